//! Host bindings for each frozen version of the contract. A plugin built
//! against 0.1.0 keeps loading when 0.2.0 is added next to it.

pub mod v0_1_0 {
    wasmtime::component::bindgen!({
        path: "../wit/since_v0.1.0",
        world: "plugin-world",
    });
}

/// The export the host looks for, per supported version.
pub const PLUGIN_EXPORT_V0_1_0: &str = "partest:plugin/plugin@0.1.0";
/// The package prefix of capability imports.
pub const PACKAGE: &str = "partest:plugin/";
