//! A tiny HTTP/1.1 GET over a tokio `TcpStream`, for forecasts from
//! `http://` and `https://` URLs (public weather APIs such as Open-Meteo
//! serve https only): bounded size, one overall timeout, `Content-Length`,
//! chunked or close-delimited bodies, no redirects followed. TLS is rustls
//! on ring, the server checked against Mozilla's root certificates
//! (`webpki-roots`, built in: no system store needed) plus any the caller
//! adds (a utility's own CA).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

/// Largest response accepted, bytes (headers and body).
pub const MAX_RESPONSE_BYTES: usize = model::forecast::MAX_TEXT_BYTES + (64 << 10);
/// The whole request (connect, send, read) must finish within this.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// Where a URL points.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    /// `https://`: over TLS.
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Path and query, from its `/`.
    pub path: String,
}

/// `http[s]://host[:port]/path?query` → where it points.
pub fn split_url(url: &str) -> anyhow::Result<Target> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else {
        anyhow::bail!("{url}: not an http:// or https:// URL");
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_string()),
    };
    if authority.is_empty() || authority.contains('@') {
        anyhow::bail!("{url}: no host (or credentials, which are not supported)");
    }
    let (host, port_text) = match authority.strip_prefix('[') {
        // [IPv6]:port
        Some(v6) => {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| anyhow::anyhow!("{url}: unclosed [ in the host"))?;
            (h, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        anyhow::bail!("{url}: no host");
    }
    let port = match port_text {
        None if tls => 443,
        None => 80,
        Some(p) => p
            .parse::<u16>()
            .with_context(|| format!("{url}: port {p:?} is not a number"))?,
    };
    let host = host.to_string();
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        anyhow::bail!("{url}: spaces or control characters in the path");
    }
    Ok(Target {
        tls,
        host,
        port,
        path,
    })
}

/// GETs an `http://` or `https://` URL and returns the body of a 200 answer
/// as text. `extra_roots`: a PEM file of certificates to trust besides the
/// built-in roots (https only).
pub async fn get(url: &str, extra_roots: Option<&Path>) -> anyhow::Result<String> {
    tokio::time::timeout(TIMEOUT, get_inner(url, extra_roots))
        .await
        .map_err(|_| anyhow::anyhow!("{url}: no complete answer within {} s", TIMEOUT.as_secs()))?
}

/// The TLS client: Mozilla's roots, and those of `extra_roots` (PEM).
fn tls_config(extra_roots: Option<&Path>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = extra_roots {
        let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert =
                cert.with_context(|| format!("{}: not a PEM certificate file", path.display()))?;
            roots
                .add(cert)
                .with_context(|| format!("{}: a certificate is unusable", path.display()))?;
            added += 1;
        }
        if added == 0 {
            anyhow::bail!("{}: no certificate in it (PEM expected)", path.display());
        }
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS set-up")?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(cfg))
}

async fn get_inner(url: &str, extra_roots: Option<&Path>) -> anyhow::Result<String> {
    let t = split_url(url)?;
    let tls = t.tls.then(|| tls_config(extra_roots)).transpose()?;
    let tcp = tokio::net::TcpStream::connect((t.host.as_str(), t.port))
        .await
        .with_context(|| format!("connecting to {}:{}", t.host, t.port))?;
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: heatnet\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        t.path, t.host
    );
    let (raw, clean_end) = if let Some(cfg) = tls {
        let name = ServerName::try_from(t.host.clone())
            .with_context(|| format!("{url}: {:?} is no server name for TLS", t.host))?;
        let mut tls = tokio_rustls::TlsConnector::from(cfg)
            .connect(name, tcp)
            .await
            .with_context(|| format!("{url}: TLS handshake with {}", t.host))?;
        exchange(&mut tls, &req, url).await?
    } else {
        let mut tcp = tcp;
        exchange(&mut tcp, &req, url).await?
    };
    let (body, delimited) = parse_response(&raw).with_context(|| url.to_string())?;
    // Without TLS's close_notify, the end of a close-delimited body cannot
    // be told from a cut connection.
    if !clean_end && !delimited {
        anyhow::bail!(
            "{url}: the connection ended without TLS close_notify and the body has no length: it may be cut short"
        );
    }
    String::from_utf8(body).with_context(|| format!("{url}: the body is not UTF-8"))
}

/// Sends `req` and reads the whole answer (bounded). Returns it, and
/// whether it ended cleanly (a TLS peer may close without close_notify).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    req: &str,
    url: &str,
) -> anyhow::Result<(Vec<u8>, bool)> {
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 << 10];
    loop {
        let n = match s.read(&mut chunk).await {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok((buf, false)),
            Err(e) => return Err(e).with_context(|| format!("{url}: reading the answer")),
        };
        if n == 0 {
            return Ok((buf, true));
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_RESPONSE_BYTES {
            anyhow::bail!("{url}: answer larger than {MAX_RESPONSE_BYTES} bytes");
        }
    }
}

/// The body of a complete HTTP/1.1 response with status 200, and whether
/// its length was declared (`Content-Length` or chunked) rather than ended
/// by the connection closing.
pub fn parse_response(raw: &[u8]) -> anyhow::Result<(Vec<u8>, bool)> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("the answer has no complete header"))?;
    let head = std::str::from_utf8(&raw[..end]).context("the header is not text")?;
    let body = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let code = status.split_whitespace().nth(1).unwrap_or_default();
    if code != "200" {
        anyhow::bail!("answered {status:?}");
    }
    let mut chunked = false;
    let mut length: Option<usize> = None;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
                chunked = true;
            } else if k == "content-length" {
                length = Some(v.parse().context("Content-Length is not a number")?);
            } else if k == "content-encoding" && !v.eq_ignore_ascii_case("identity") {
                anyhow::bail!("the body is {v}-encoded; heatnet reads plain bodies only");
            }
        }
    }
    if chunked {
        return Ok((dechunk(body)?, true));
    }
    match length {
        Some(n) if body.len() < n => {
            anyhow::bail!("the body ended after {} of {n} bytes", body.len())
        }
        Some(n) => Ok((body[..n].to_vec(), true)),
        None => Ok((body.to_vec(), false)),
    }
}

fn dechunk(mut b: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| anyhow::anyhow!("chunked body ended early"))?;
        let size_text = std::str::from_utf8(&b[..eol]).context("chunk size is not text")?;
        let size_hex = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16)
            .with_context(|| format!("chunk size {size_hex:?} is not hexadecimal"))?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size + 2 {
            anyhow::bail!("chunked body ended early");
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_host_port_and_path() {
        let at = |tls, host: &str, port, path: &str| Target {
            tls,
            host: host.into(),
            port,
            path: path.into(),
        };
        assert_eq!(
            split_url("http://api.example:8080/v1/forecast?hourly=temperature_2m").expect("url"),
            at(
                false,
                "api.example",
                8080,
                "/v1/forecast?hourly=temperature_2m"
            )
        );
        assert_eq!(
            split_url("http://127.0.0.1?x=1").expect("url"),
            at(false, "127.0.0.1", 80, "/?x=1")
        );
        assert_eq!(
            split_url("https://api.open-meteo.com/v1/forecast?latitude=39.1").expect("url"),
            at(
                true,
                "api.open-meteo.com",
                443,
                "/v1/forecast?latitude=39.1"
            )
        );
        for (bad, want) in [
            ("ftp://x/", "not an http:// or https:// URL"),
            ("http://:80/", "no host"),
            ("http://h:port/", "port \"port\""),
        ] {
            let e = split_url(bad).expect_err(bad).to_string();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn bodies_by_length_chunks_or_close() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello+extra";
        assert_eq!(
            parse_response(r).expect("length"),
            (b"hello".to_vec(), true)
        );
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(r).expect("chunked"),
            (b"hello world".to_vec(), true)
        );
        let r = b"HTTP/1.0 200 OK\r\n\r\nall of it";
        assert_eq!(
            parse_response(r).expect("close"),
            (b"all of it".to_vec(), false)
        );
        for (bad, want) in [
            (
                &b"HTTP/1.1 404 Not Found\r\n\r\n"[..],
                "answered \"HTTP/1.1 404 Not Found\"",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort",
                "ended after 5 of 9",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
                "ended early",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n",
                "gzip-encoded",
            ),
            (b"HTTP/1.1 200", "no complete header"),
        ] {
            let e = parse_response(bad).expect_err(want).to_string();
            assert!(e.contains(want), "{e}");
        }
    }

    /// A TLS server on loopback with the test CA's `localhost` certificate,
    /// answering each connection once; its port.
    async fn tls_server(answer: &'static [u8], close_notify: bool) -> u16 {
        tls_server_on("127.0.0.1", answer, close_notify).await
    }

    async fn tls_server_on(ip: &str, answer: &'static [u8], close_notify: bool) -> u16 {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/control/testdata");
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(dir.join("localhost.pem"))
                .expect("certificate file")
                .collect::<Result<_, _>>()
                .expect("certificates");
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(dir.join("localhost.key"))
            .expect("key");
        let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    continue; // the client refused our certificate
                };
                let mut req = Vec::new();
                let mut b = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut b).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&b[..n]),
                    }
                }
                let _ = tls.write_all(answer).await;
                if close_notify {
                    let _ = tls.shutdown().await;
                }
            }
        });
        port
    }

    fn test_ca() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/control/testdata/ca.pem")
    }

    #[tokio::test]
    async fn an_https_answer_is_read_from_a_server_whose_certificate_is_trusted() {
        let port = tls_server(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", true).await;
        let url = format!("https://localhost:{port}/forecast");
        assert_eq!(get(&url, Some(&test_ca())).await.expect("https"), "hello");
        // Not signed by any root it trusts: refused, and the error says why.
        let e = format!("{:#}", get(&url, None).await.expect_err("untrusted"));
        assert!(
            e.contains("TLS handshake") && e.contains("certificate"),
            "{e}"
        );
        // The certificate names localhost and 127.0.0.1, not other names.
        let other = tls_server_on("127.0.0.2", b"HTTP/1.1 200 OK\r\n\r\n", true).await;
        let e = format!(
            "{:#}",
            get(&format!("https://127.0.0.2:{other}/"), Some(&test_ca()))
                .await
                .expect_err("wrong name")
        );
        assert!(e.contains("certificate"), "{e}");
    }

    #[tokio::test]
    async fn a_body_cut_without_close_notify_is_refused_unless_its_length_was_declared() {
        let cut = tls_server(b"HTTP/1.1 200 OK\r\n\r\nall of i", false).await;
        let e = format!(
            "{:#}",
            get(&format!("https://localhost:{cut}/"), Some(&test_ca()))
                .await
                .expect_err("cut")
        );
        assert!(e.contains("close_notify"), "{e}");
        let sized = tls_server(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nall", false).await;
        let body = get(&format!("https://localhost:{sized}/"), Some(&test_ca()))
            .await
            .expect("declared length");
        assert_eq!(body, "all");
    }

    #[tokio::test]
    async fn a_ca_file_that_holds_no_certificate_is_refused_by_name() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/control/testdata");
        let key = dir.join("localhost.key");
        let e = format!(
            "{:#}",
            get("https://localhost:1/", Some(&key))
                .await
                .expect_err("a key is no certificate")
        );
        assert!(
            e.contains("localhost.key") && e.contains("no certificate"),
            "{e}"
        );
    }
}
