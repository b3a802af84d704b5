//! The libpq-compatible TLS client for PostgreSQL connections: `sslmode`
//! as libpq reads it (rustls, the ring provider of [`super::tls`]):
//! `disable`; `allow` (plain, TLS when the server's pg_hba.conf wants it);
//! `prefer`, the default (TLS when the server offers it, else plain);
//! `require` (TLS, the certificate unchecked); `verify-ca` and
//! `verify-full` (checked; the latter also against the host name). The
//! roots are `sslrootcert=` (a PEM file; `system` for the system store),
//! else `~/.postgresql/root.crt`, else `SSL_CERT_FILE`/`SSL_CERT_DIR` or the
//! system store. As in libpq, a root file makes `require` and `prefer` check
//! the chain, and unix sockets never use TLS.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use postgres::config::{Host as PgHost, SslMode as PgSslMode};
use postgres::error::SqlState;
use postgres::tls::{MakeTlsConnect, TlsConnect};
use postgres::{CancelToken, Client};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::redact;

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Result<SslMode, String> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(format!(
                    "sslmode={other}: expected disable, allow, prefer, require, verify-ca or verify-full"
                ));
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where trusted roots come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    /// A PEM file (`sslrootcert=`, or `~/.postgresql/root.crt`).
    File(PathBuf),
    /// `SSL_CERT_FILE`/`SSL_CERT_DIR`, else the system store.
    Native,
}

/// The url's TLS parameters, as written.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TlsParams {
    sslmode: Option<String>,
    sslrootcert: Option<String>,
}

/// What a connection does about TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub mode: SslMode,
    /// `None`: the certificate is not checked.
    pub roots: Option<Roots>,
}

/// `url` without the libpq parameters the postgres crate does not take
/// (`sslmode` beyond disable/prefer/require, `sslrootcert`), and those.
pub fn split_tls(url: &str) -> Result<(String, TlsParams), String> {
    let mut params = TlsParams::default();
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), params));
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "sslmode" => params.sslmode = Some(redact::percent_decode(v)),
            "sslrootcert" => params.sslrootcert = Some(redact::percent_decode(v)),
            "sslcert" | "sslkey" | "sslpassword" => {
                return Err(format!(
                    "{k}: client certificates are not supported for partest's own connection \
                     (authenticate with a password in the url)"
                ));
            }
            "sslcrl"
            | "sslcrldir"
            | "sslsni"
            | "sslcompression"
            | "gssencmode"
            | "ssl_min_protocol_version"
            | "ssl_max_protocol_version"
            | "requiressl" => {
                // libpq tuning the postgres crate does not know; rustls
                // sends SNI, checks no CRL and speaks TLS 1.2 and 1.3.
            }
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, params))
}

impl TlsParams {
    /// The mode and roots as libpq picks them for `config`'s hosts.
    pub fn resolve(&self, config: &postgres::Config) -> Result<Tls, String> {
        let system = self.sslrootcert.as_deref() == Some("system");
        let mode = match &self.sslmode {
            Some(m) => SslMode::parse(m)?,
            None if system => SslMode::VerifyFull,
            None => match config.get_ssl_mode() {
                PgSslMode::Disable => SslMode::Disable,
                PgSslMode::Require => SslMode::Require,
                _ => SslMode::Prefer,
            },
        };
        if system && mode != SslMode::VerifyFull {
            return Err(format!(
                "sslrootcert=system needs sslmode=verify-full (as in libpq), not {}",
                mode.name()
            ));
        }
        let file = match self.sslrootcert.as_deref() {
            Some("system") => None,
            Some(path) => Some(PathBuf::from(path)),
            None => std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".postgresql/root.crt"))
                .filter(|p| p.is_file()),
        };
        if let (Some(f), Some(_)) = (&file, &self.sslrootcert)
            && !f.is_file()
            && mode != SslMode::Disable
        {
            return Err(format!("sslrootcert={}: no such file", f.display()));
        }
        let roots = match (mode, file) {
            (SslMode::Disable, _) => None,
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => Some(Roots::Native),
            (_, Some(f)) => Some(Roots::File(f)),
            (_, None) => None,
        };
        // Unix sockets never carry TLS (the server answers N); libpq
        // ignores sslmode there.
        let unix = !config.get_hosts().is_empty()
            && config
                .get_hosts()
                .iter()
                .all(|h| !matches!(h, PgHost::Tcp(_)));
        Ok(if unix {
            Tls {
                mode: SslMode::Disable,
                roots: None,
            }
        } else {
            Tls { mode, roots }
        })
    }
}

/// Connects as libpq would with `tls.mode`, falling back where libpq does:
/// `prefer` retries without TLS when the handshake fails or pg_hba.conf has
/// no entry for an encrypted connection; `allow` retries with TLS when it
/// has none for a plain one.
pub fn connect(config: &mut postgres::Config, tls: &Tls) -> Result<Client, postgres::Error> {
    let connector = || connector(tls);
    let rejected =
        |e: &postgres::Error| e.code() == Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION);
    match tls.mode {
        SslMode::Disable => {
            config.ssl_mode(PgSslMode::Disable);
            config.connect(postgres::NoTls)
        }
        SslMode::Allow => {
            config.ssl_mode(PgSslMode::Disable);
            match config.connect(postgres::NoTls) {
                Err(e) if rejected(&e) => {
                    config.ssl_mode(PgSslMode::Require);
                    config.connect(connector())
                }
                r => r,
            }
        }
        SslMode::Prefer => {
            config.ssl_mode(PgSslMode::Prefer);
            let handshake_failed = Arc::new(AtomicBool::new(false));
            let noting = Noting {
                inner: connector(),
                failed: handshake_failed.clone(),
            };
            match config.connect(noting) {
                Err(e) if rejected(&e) || handshake_failed.load(Ordering::SeqCst) => {
                    config.ssl_mode(PgSslMode::Disable);
                    config.connect(postgres::NoTls)
                }
                r => r,
            }
        }
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
            config.ssl_mode(PgSslMode::Require);
            config.connect(connector())
        }
    }
}

/// Asks the server to cancel what `token`'s connection is running, over a
/// connection made as `tls` says (a TLS-only server wants the request in TLS).
pub fn cancel(token: &CancelToken, tls: &Tls) -> Result<(), postgres::Error> {
    match tls.mode {
        SslMode::Disable => token.cancel_query(postgres::NoTls),
        _ => token.cancel_query(connector(tls)),
    }
}

/// The rustls connector for `tls`; roots that cannot be loaded make every
/// handshake fail, saying why.
fn connector(tls: &Tls) -> MakeRustlsConnect {
    let provider = super::tls::provider();
    let check = match tls.roots.as_ref().map(load_roots) {
        None => Check::Unchecked,
        Some(Err(why)) => Check::NoRoots(why),
        Some(Ok(roots)) => {
            match WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
            {
                Ok(webpki) => Check::Chain {
                    webpki,
                    host_name: tls.mode == SslMode::VerifyFull,
                },
                Err(e) => Check::NoRoots(e.to_string()),
            }
        }
    };
    let verifier = Arc::new(Verifier {
        check,
        provider: provider.clone(),
    });
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    MakeRustlsConnect::new(config)
}

fn load_roots(roots: &Roots) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::File(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("sslrootcert={}: {e}", path.display()))?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!(
                    "sslrootcert={}: no certificate in it",
                    path.display()
                ));
            }
        }
        Roots::Native => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err(
                    "no trusted roots (give the CA with sslrootcert= in the url or SSL_CERT_FILE)"
                        .into(),
                );
            }
        }
    }
    Ok(store)
}

/// What a connection checks of the server's certificate, as `sslmode` and
/// the roots say. The handshake's signatures are always checked.
#[derive(Debug)]
enum Check {
    /// `require`, `prefer` and `allow` without a root file: nothing.
    Unchecked,
    /// The chain (`verify-ca`), and with `host_name` the name too (`verify-full`).
    Chain {
        webpki: Arc<WebPkiServerVerifier>,
        host_name: bool,
    },
    /// Roots that could not be loaded: every certificate is refused, saying why.
    NoRoots(String),
}

/// The one certificate verifier of partest's PostgreSQL connections.
#[derive(Debug)]
struct Verifier {
    check: Check,
    provider: Arc<CryptoProvider>,
}

impl Verifier {
    fn refused(&self) -> Result<(), rustls::Error> {
        match &self.check {
            Check::NoRoots(why) => Err(rustls::Error::General(why.clone())),
            _ => Ok(()),
        }
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.refused()?;
        let Check::Chain { webpki, host_name } = &self.check else {
            return Ok(ServerCertVerified::assertion());
        };
        // webpki checks the name last, after the chain.
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !host_name => Ok(ServerCertVerified::assertion()),
            r => r,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.refused()?;
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.refused()?;
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// [`connector`], noting in `failed` when the TLS handshake (or the
/// connector for the host name) fails: `prefer`'s cue to retry without TLS,
/// told by type, not by the error's text.
struct Noting {
    inner: MakeRustlsConnect,
    failed: Arc<AtomicBool>,
}

struct NotingConnect<C> {
    inner: C,
    failed: Arc<AtomicBool>,
}

impl<S> MakeTlsConnect<S> for Noting
where
    MakeRustlsConnect: MakeTlsConnect<S>,
    <MakeRustlsConnect as MakeTlsConnect<S>>::TlsConnect: Send + 'static,
    <<MakeRustlsConnect as MakeTlsConnect<S>>::TlsConnect as TlsConnect<S>>::Future: Send,
    S: Send + 'static,
{
    type Stream = <MakeRustlsConnect as MakeTlsConnect<S>>::Stream;
    type TlsConnect = NotingConnect<<MakeRustlsConnect as MakeTlsConnect<S>>::TlsConnect>;
    type Error = <MakeRustlsConnect as MakeTlsConnect<S>>::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Self::TlsConnect, Self::Error> {
        match self.inner.make_tls_connect(domain) {
            Ok(inner) => Ok(NotingConnect {
                inner,
                failed: self.failed.clone(),
            }),
            Err(e) => {
                self.failed.store(true, Ordering::SeqCst);
                Err(e)
            }
        }
    }
}

impl<S, C> TlsConnect<S> for NotingConnect<C>
where
    C: TlsConnect<S> + Send + 'static,
    C::Future: Send,
    S: Send + 'static,
{
    type Stream = C::Stream;
    type Error = C::Error;
    type Future = Pin<Box<dyn Future<Output = Result<C::Stream, C::Error>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        let failed = self.failed;
        let handshake = self.inner.connect(stream);
        Box::pin(async move {
            let r = handshake.await;
            if r.is_err() {
                failed.store(true, Ordering::SeqCst);
            }
            r
        })
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn tls(url: &str) -> Result<Tls, String> {
        let (rest, params) = split_tls(url)?;
        let config = postgres::Config::from_str(&rest).map_err(|e| e.to_string())?;
        params.resolve(&config)
    }

    #[test]
    fn libpq_tls_parameters_are_split_off() {
        let (rest, params) = split_tls(
            "postgres://u:p@h/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u:p@h/db?application_name=x");
        assert_eq!(params.sslmode.as_deref(), Some("verify-full"));
        assert_eq!(params.sslrootcert.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(split_tls("postgres://h/db").unwrap().0, "postgres://h/db");
        assert!(split_tls("postgres://h/db?sslcert=c.pem").is_err());
    }

    #[test]
    fn sslmode_is_resolved_as_libpq_does() {
        let mode = |url: &str| tls(url).map(|t| t.mode);
        assert_eq!(mode("postgres://h/db"), Ok(SslMode::Prefer));
        assert_eq!(
            mode("postgres://h/db?sslmode=disable"),
            Ok(SslMode::Disable)
        );
        assert_eq!(mode("postgres://h/db?sslmode=allow"), Ok(SslMode::Allow));
        assert_eq!(
            tls("postgres://h/db?sslmode=require"),
            Ok(Tls {
                mode: SslMode::Require,
                roots: None
            })
        );
        assert_eq!(
            tls("postgres://h/db?sslmode=verify-ca").map(|t| t.roots),
            Ok(Some(Roots::Native))
        );
        // sslrootcert=system means verify-full, and nothing weaker.
        assert_eq!(
            tls("postgres://h/db?sslrootcert=system"),
            Ok(Tls {
                mode: SslMode::VerifyFull,
                roots: Some(Roots::Native)
            })
        );
        assert!(tls("postgres://h/db?sslrootcert=system&sslmode=require").is_err());
        // A root file makes require check the chain (verify-ca).
        let ca = tempfile::NamedTempFile::new().unwrap();
        let url = format!(
            "postgres://h/db?sslmode=require&sslrootcert={}",
            ca.path().display()
        );
        assert_eq!(
            tls(&url).map(|t| t.roots),
            Ok(Some(Roots::File(ca.path().to_path_buf())))
        );
        assert!(tls("postgres://h/db?sslmode=verify-full&sslrootcert=/nonexistent.pem").is_err());
        assert!(tls("postgres://h/db?sslmode=bogus").is_err());
        // Unix sockets never use TLS.
        assert_eq!(
            mode("postgres://u@/db?host=/tmp&port=5433&sslmode=require"),
            Ok(SslMode::Disable)
        );
    }
}
