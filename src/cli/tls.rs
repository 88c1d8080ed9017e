//! `serve` over TLS: the certificate and key come from PEM files and are reloaded
//! without a restart when the files change. Every handshake looks at the files'
//! metadata (a `stat` each, no read); when it changed, the pair is read and checked,
//! and a bad new pair (unparsable, or a key that does not match the certificate)
//! keeps the old one, logs why and counts `tenantctl_tls_reload_errors_total`.
//!
//! One listening port can take both HTTPS and plain HTTP (the first byte tells a TLS
//! handshake from a request line); in HTTPS-only mode a plain request gets a 400
//! that says to use https.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use tenant_orchestrator::api::listen::{LimitedListener, Slotted};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::mpsc;
use tokio_rustls::rustls::crypto::{ring, CryptoProvider};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How long a client may take to send its first byte and finish the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections handshaken but not yet taken by the server.
const ACCEPT_QUEUE: usize = 128;

/// Why a certificate and key pair cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("cannot read the TLS {what} {path}: {source}")]
    Unreadable {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the TLS certificate file {0} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificate(PathBuf),
    #[error("the TLS certificate file {path} is not valid PEM: {detail}")]
    BadCertificate { path: PathBuf, detail: String },
    #[error("the TLS key file {path} holds no usable private key (expected a PEM PKCS#8, PKCS#1 or SEC1 key): {detail}")]
    BadKey { path: PathBuf, detail: String },
    #[error("the TLS key {key} does not belong to the certificate {cert} ({detail}); give the key the certificate was issued for")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        detail: String,
    },
}

/// What identifies a version of a file without reading it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    #[cfg(unix)]
    inode: u64,
}

impl Stamp {
    fn of(path: &Path) -> io::Result<Stamp> {
        let meta = std::fs::metadata(path)?;
        Ok(Stamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            #[cfg(unix)]
            inode: std::os::unix::fs::MetadataExt::ino(&meta),
        })
    }
}

/// The certificate and key files, and the pair last loaded from them.
#[derive(Debug)]
pub struct ReloadingCertificate {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    key: Arc<CertifiedKey>,
    /// The files' stamps when last looked at (loaded, or refused).
    stamps: (Stamp, Stamp),
}

impl ReloadingCertificate {
    /// Loads the pair; an error says which file is wrong and how.
    pub fn load(cert_path: PathBuf, key_path: PathBuf) -> Result<Self, TlsConfigError> {
        let provider = Arc::new(ring::default_provider());
        let stamps = stamps(&cert_path, &key_path)?;
        let key = load_pair(&cert_path, &key_path, &provider)?;
        Ok(Self {
            cert_path,
            key_path,
            provider,
            current: Mutex::new(Loaded {
                key: Arc::new(key),
                stamps,
            }),
        })
    }

    /// The pair to present: reloaded first when either file changed since it was
    /// last looked at. A pair that fails to load keeps the one before.
    pub fn current(&self) -> Arc<CertifiedKey> {
        let mut loaded = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let now = match stamps(&self.cert_path, &self.key_path) {
            Ok(now) => now,
            // A file being replaced may be missing for a moment: keep serving.
            Err(_) => return loaded.key.clone(),
        };
        if now != loaded.stamps {
            loaded.stamps = now;
            match load_pair(&self.cert_path, &self.key_path, &self.provider) {
                Ok(key) => {
                    loaded.key = Arc::new(key);
                    metrics::counter!("tenantctl_tls_reloads_total").increment(1);
                    tracing::info!(cert = %self.cert_path.display(), key = %self.key_path.display(), "TLS certificate reloaded");
                }
                Err(e) => {
                    metrics::counter!("tenantctl_tls_reload_errors_total").increment(1);
                    tracing::error!(error = %e, "the changed TLS certificate or key cannot be used; still serving the previous pair");
                }
            }
        }
        loaded.key.clone()
    }

    /// A rustls server configuration that presents [`Self::current`] (HTTP/1.1).
    pub fn server_config(self: Arc<Self>) -> ServerConfig {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default TLS versions")
            .with_no_client_auth()
            .with_cert_resolver(self);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config
    }
}

impl ResolvesServerCert for ReloadingCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

fn stamps(cert: &Path, key: &Path) -> Result<(Stamp, Stamp), TlsConfigError> {
    let stamp = |what, path: &Path| {
        Stamp::of(path).map_err(|source| TlsConfigError::Unreadable {
            what,
            path: path.to_owned(),
            source,
        })
    };
    Ok((stamp("certificate", cert)?, stamp("key", key)?))
}

fn load_pair(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsConfigError> {
    let read = |what, path: &Path| {
        std::fs::read(path).map_err(|source| TlsConfigError::Unreadable {
            what,
            path: path.to_owned(),
            source,
        })
    };
    let cert_pem = read("certificate", cert_path)?;
    let key_pem = read("key", key_path)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsConfigError::BadCertificate {
            path: cert_path.to_owned(),
            detail: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsConfigError::NoCertificate(cert_path.to_owned()));
    }
    let bad_key = |detail: String| TlsConfigError::BadKey {
        path: key_path.to_owned(),
        detail,
    };
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| bad_key(e.to_string()))?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| bad_key(e.to_string()))?;
    let pair = CertifiedKey::new(chain, signing);
    pair.keys_match().map_err(|e| TlsConfigError::Mismatch {
        cert: cert_path.to_owned(),
        key: key_path.to_owned(),
        detail: e.to_string(),
    })?;
    Ok(pair)
}

/// A connection `serve` accepted: HTTPS, or plain HTTP where that is allowed.
pub enum Connection {
    Tls(Box<TlsStream<Slotted>>),
    Plain(Slotted),
}

impl AsyncRead for Connection {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Connection::Plain(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Connection::Plain(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Connection::Plain(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Connection::Plain(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// What the answer to plain HTTP on an HTTPS-only port says.
/// It has the API's error shape (`{"error": {"code", "message"}}`).
const HTTPS_ONLY_ANSWER: &str =
    "{\"error\":{\"code\":\"https_required\",\"message\":\"this port speaks HTTPS only; use https://\"}}";

/// A listener for `axum::serve` that does the TLS handshakes off the accept loop (a
/// slow client delays no other) and hands over finished connections.
pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(Connection, SocketAddr)>,
}

impl TlsListener {
    /// Accepts on `tcp` (a handshake in progress holds one of its slots); plain HTTP is
    /// served too unless `https_only`.
    pub fn new(
        mut tcp: LimitedListener,
        certificate: Arc<ReloadingCertificate>,
        https_only: bool,
    ) -> io::Result<Self> {
        let local = axum::serve::Listener::local_addr(&tcp)?;
        let acceptor = TlsAcceptor::from(Arc::new(certificate.server_config()));
        let (tx, ready) = mpsc::channel(ACCEPT_QUEUE);
        tokio::spawn(async move {
            loop {
                // Waits out accept's own errors (out of file descriptors and the like).
                let (stream, peer) = axum::serve::Listener::accept(&mut tcp).await;
                let (acceptor, ready) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, open(stream, acceptor, https_only));
                    match handshake.await {
                        Ok(Ok(Some(connection))) => {
                            let _ = ready.send((connection, peer)).await;
                        }
                        Ok(Ok(None)) => {}
                        Ok(Err(e)) => {
                            metrics::counter!("tenantctl_tls_handshake_errors_total").increment(1);
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        }
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
                if tx.is_closed() {
                    return;
                }
            }
        });
        Ok(Self { local, ready })
    }
}

/// The first byte of a TLS record carrying a handshake.
const TLS_HANDSHAKE: u8 = 0x16;

async fn open(stream: Slotted, acceptor: TlsAcceptor, https_only: bool) -> io::Result<Option<Connection>> {
    let mut first = [0u8; 1];
    if stream.tcp().peek(&mut first).await? == 0 {
        return Ok(None);
    }
    if first[0] == TLS_HANDSHAKE {
        return Ok(Some(Connection::Tls(Box::new(acceptor.accept(stream).await?))));
    }
    if !https_only {
        return Ok(Some(Connection::Plain(stream)));
    }
    let mut stream = stream;
    // Read the request first: closing with it unread would reset the connection
    // before the client reads the answer.
    let mut request = [0u8; 8192];
    let _ = stream.read(&mut request).await?;
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{HTTPS_ONLY_ANSWER}",
        HTTPS_ONLY_ANSWER.len()
    );
    stream.write_all(answer.as_bytes()).await?;
    stream.shutdown().await?;
    Ok(None)
}

impl tenant_orchestrator::api::listen::Transport for Connection {
    fn over_tls(&self) -> bool {
        matches!(self, Connection::Tls(_))
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept loop only stops when this receiver is gone.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}
