//! Outbound TLS: the one client configuration every outbound HTTP client shares (targets,
//! OAuth token endpoints, the inbound authorizers' discovery and keys, the search
//! embedder, traces, `doctor`).
//!
//! Why not reqwest's own: each `reqwest::Client` it builds loads and parses the system's
//! root certificates (rustls-platform-verifier reads the bundle and `/etc/ssl/certs`),
//! about 20 ms of CPU per client, paid at start-up before the listener is up, once per
//! target and again on every reload; and a sidecar in front of plain-HTTP servers in its own
//! pod never needs them. Here the verifier is the same platform verifier, created once per
//! process on the first certificate it has to check. Verification itself is unchanged: the
//! system's roots (`SSL_CERT_FILE` / `SSL_CERT_DIR` as rustls-native-certs reads them), TLS
//! 1.2 and 1.3, SNI, HTTP/1.1 by ALPN.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_platform_verifier::Verifier;

/// A reqwest client builder with the shared TLS configuration (add timeouts and the rest).
pub fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().tls_backend_preconfigured(client_config().clone())
}

/// An HTTPS-or-HTTP connector with the shared TLS configuration, for the targets' direct
/// client (`targets/http/client.rs`).
pub fn https_connector(
    connect_timeout: std::time::Duration,
) -> hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector> {
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    let mut config = client_config().clone();
    // hyper-rustls sets ALPN itself (HTTP/1.1 only, as enabled below).
    config.alpn_protocols.clear();
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http)
}

fn client_config() -> &'static rustls::ClientConfig {
    static CONFIG: OnceLock<rustls::ClientConfig> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let provider = provider();
        let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("the default TLS versions are supported by the default provider")
            .dangerous()
            // "Dangerous" only in rustls's API sense: a custom verifier, here the platform's.
            .with_custom_certificate_verifier(Arc::new(SystemRoots { provider }))
            .with_no_client_auth();
        // The clients speak HTTP/1.1 only (reqwest without `http2`), as reqwest would set.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config
    })
}

/// The process's crypto provider if one was installed, else aws-lc-rs (reqwest's default).
fn provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}

/// The platform verifier, created (roots loaded) on the first certificate to check.
#[derive(Debug)]
struct SystemRoots {
    provider: Arc<CryptoProvider>,
}

impl SystemRoots {
    fn verifier(&self) -> Result<&'static Verifier, rustls::Error> {
        static VERIFIER: OnceLock<Result<Verifier, rustls::Error>> = OnceLock::new();
        VERIFIER
            .get_or_init(|| {
                let started = std::time::Instant::now();
                let verifier = Verifier::new(self.provider.clone());
                match &verifier {
                    Ok(_) => tracing::debug!(
                        "loaded the system's root certificates in {:.1} ms",
                        started.elapsed().as_secs_f64() * 1000.0
                    ),
                    Err(e) => tracing::error!("no system root certificates for TLS: {e}"),
                }
                verifier
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl ServerCertVerifier for SystemRoots {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.verifier()?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    // The handshake signatures need no roots: checked with the provider's algorithms, as
    // the platform verifier (through webpki) does.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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
