//! A tiny HTTP/1.1 GET over a tokio `TcpStream`, for forecasts from `http://`
//! URLs (no TLS): bounded size, one overall timeout, `Content-Length`,
//! chunked or close-delimited bodies, no redirects followed.

use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Largest response accepted, bytes (headers and body).
pub const MAX_RESPONSE_BYTES: usize = model::forecast::MAX_TEXT_BYTES + (64 << 10);
/// The whole request (connect, send, read) must finish within this.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// `http://host[:port]/path?query` → (host, port, path and query).
pub fn split_url(url: &str) -> anyhow::Result<(String, u16, String)> {
    let rest = if let Some(r) = url.strip_prefix("http://") {
        r
    } else if url.starts_with("https://") {
        anyhow::bail!("{url}: https is not supported; download the file and load it from disk");
    } else {
        anyhow::bail!("{url}: not an http:// URL");
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
        None => 80,
        Some(p) => p
            .parse::<u16>()
            .with_context(|| format!("{url}: port {p:?} is not a number"))?,
    };
    let host = host.to_string();
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        anyhow::bail!("{url}: spaces or control characters in the path");
    }
    Ok((host, port, path))
}

/// GETs an `http://` URL and returns the body of a 200 answer as text.
pub async fn get(url: &str) -> anyhow::Result<String> {
    tokio::time::timeout(TIMEOUT, get_inner(url))
        .await
        .map_err(|_| anyhow::anyhow!("{url}: no complete answer within {} s", TIMEOUT.as_secs()))?
}

async fn get_inner(url: &str) -> anyhow::Result<String> {
    let (host, port, path) = split_url(url)?;
    let mut s = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .with_context(|| format!("connecting to {host}:{port}"))?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: heatnet\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 << 10];
    loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_RESPONSE_BYTES {
            anyhow::bail!("{url}: answer larger than {MAX_RESPONSE_BYTES} bytes");
        }
    }
    let body = parse_response(&buf).with_context(|| url.to_string())?;
    String::from_utf8(body).with_context(|| format!("{url}: the body is not UTF-8"))
}

/// The body of a complete HTTP/1.1 response with status 200.
pub fn parse_response(raw: &[u8]) -> anyhow::Result<Vec<u8>> {
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
        return dechunk(body);
    }
    match length {
        Some(n) if body.len() < n => {
            anyhow::bail!("the body ended after {} of {n} bytes", body.len())
        }
        Some(n) => Ok(body[..n].to_vec()),
        None => Ok(body.to_vec()),
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
        assert_eq!(
            split_url("http://api.example:8080/v1/forecast?hourly=temperature_2m").expect("url"),
            (
                "api.example".into(),
                8080,
                "/v1/forecast?hourly=temperature_2m".into()
            )
        );
        assert_eq!(
            split_url("http://127.0.0.1?x=1").expect("url"),
            ("127.0.0.1".into(), 80, "/?x=1".into())
        );
        for (bad, want) in [
            ("https://x/", "https is not supported"),
            ("ftp://x/", "not an http:// URL"),
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
        assert_eq!(parse_response(r).expect("length"), b"hello");
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n";
        assert_eq!(parse_response(r).expect("chunked"), b"hello world");
        let r = b"HTTP/1.0 200 OK\r\n\r\nall of it";
        assert_eq!(parse_response(r).expect("close"), b"all of it");
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
}
