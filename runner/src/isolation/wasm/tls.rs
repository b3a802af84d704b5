//! rustls's crypto provider, shared by every TLS connection the host opens
//! for a capability (`rediss://`, PostgreSQL's sslmode).

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;

/// ring, the one provider partest builds in, installed once as rustls's
/// process-wide default, so that another crate enabling a second provider
/// cannot make a TLS connection panic on an ambiguous default.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            let ring = Arc::new(rustls::crypto::ring::default_provider());
            // Err: one is installed already, which is as good for the
            // users of the default; ours is passed explicitly anyway.
            let _ = rustls::crypto::ring::default_provider().install_default();
            ring
        })
        .clone()
}
