//! HTTP status lines as they appear inside a 207 body (`HTTP/1.1 423 Locked`).

/// The reason phrase for a status code, including the WebDAV ones (RFC 4918 §11).
pub fn reason(code: u16) -> &'static str {
    match code {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        422 => "Unprocessable Content",
        423 => "Locked",
        424 => "Failed Dependency",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        507 => "Insufficient Storage",
        _ => "",
    }
}

/// The full status line for a `DAV:status` element.
pub fn status_line(code: u16) -> String {
    format!("HTTP/1.1 {code} {}", reason(code))
}

/// Reads the code out of a status line of any HTTP version (`HTTP/1.1 404 Not Found`,
/// `HTTP/2 200`); `None` when it is not one.
pub fn parse_status_line(line: &str) -> Option<u16> {
    let mut parts = line.split_whitespace();
    let version = parts.next()?;
    if !version.starts_with("HTTP/") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok().filter(|c| (100..600).contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        assert_eq!(status_line(423), "HTTP/1.1 423 Locked");
        assert_eq!(parse_status_line("HTTP/1.1 423 Locked"), Some(423));
        assert_eq!(parse_status_line(" HTTP/2 200 "), Some(200));
        assert_eq!(parse_status_line("HTTP/1.1 2000 x"), None);
        assert_eq!(parse_status_line("200 OK"), None);
    }
}
