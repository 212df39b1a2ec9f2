//! A minimal HTTP/1.1 client for tests of the operations endpoints: no client crate needed
//! to read `/metrics`, `/healthz` and `/readyz`.

use std::io::{Read, Write};
use std::net::TcpStream;

/// Sends `GET path` to 127.0.0.1:`port`; returns the status code and the body.
///
/// # Panics
/// When the connection fails or the response is not HTTP.
pub fn get(port: u16, path: &str) -> (u16, String) {
    get_with(port, path, &[])
}

/// Sends `GET path` with extra headers (`("Authorization", "Bearer …")`).
///
/// # Panics
/// When the connection fails or the response is not HTTP.
pub fn get_with(port: u16, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    request(port, "GET", path, headers, "")
}

/// Sends `method path` with extra headers and a body (sent with its length when not empty).
///
/// # Panics
/// When the connection fails or the response is not HTTP.
pub fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let mut stream =
        TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect to :{port}: {e}"));
    let mut extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    if !body.is_empty() {
        extra.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{extra}\r\n{body}"
    )
    .expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("HTTP status line");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}
