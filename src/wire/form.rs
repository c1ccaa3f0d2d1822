//! Builds the documented upload form (`multipart/form-data` with `key` and `file`),
//! for clients of the API: the benchmark, the simulation's clients and tests.

use bytes::Bytes;

const BOUNDARY: &str = "memring-form-7d1f3a";

/// The body and the content type of an upload form. Either part may be left out
/// (to test bad input); `file` is the bytes and the part's content type, if any.
pub fn upload_form(key: Option<&str>, file: Option<(&[u8], Option<&str>)>) -> (Bytes, String) {
    let mut body = Vec::new();
    if let Some(key) = key {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\n{key}\r\n"
            )
            .as_bytes(),
        );
    }
    if let Some((bytes, content_type)) = file {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"image\"\r\n")
                .as_bytes(),
        );
        if let Some(content_type) = content_type {
            body.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    (
        Bytes::from(body),
        format!("multipart/form-data; boundary={BOUNDARY}"),
    )
}
