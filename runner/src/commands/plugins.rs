//! `partest plugins list | inspect NAME`: what the Wasm host knows of each
//! plugin, rendered by the host itself.

use crate::config::Config;
use crate::error::Result;
use crate::isolation::wasm;

pub fn plugins_list(config: &Config) -> Result<String> {
    wasm::plugins_list(config, &config.state_dir())
}

pub fn plugins_inspect(config: &Config, name: &str) -> Result<String> {
    wasm::plugins_inspect(config, &config.state_dir(), name)
}
