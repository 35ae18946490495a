//! TLS for the runner's connections (and the CLI's): the system's trusted roots, plus a
//! private CA given with `--ca-cert`. There is no way to turn verification off.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;

/// The TLS settings could not be built.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

/// A client configuration trusting the system roots and, if given, the CA certificates in
/// `ca_cert` (PEM).
pub fn client_config(ca_cert: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (_added, _ignored) = roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_cert {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| TlsError(format!("cannot read --ca-cert {}: {e}", path.display())))?
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError(format!("--ca-cert {} is not PEM: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(TlsError(format!(
                "--ca-cert {} holds no certificate",
                path.display()
            )));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| {
                TlsError(format!(
                    "--ca-cert {} has an unusable certificate: {e}",
                    path.display()
                ))
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(format!("TLS protocol versions: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// An HTTP client that verifies servers with `tls`.
pub fn http_client(tls: &Arc<rustls::ClientConfig>) -> Result<reqwest::Client, TlsError> {
    reqwest::Client::builder()
        .use_preconfigured_tls((**tls).clone())
        .build()
        .map_err(|e| TlsError(format!("cannot build HTTP client: {e}")))
}
