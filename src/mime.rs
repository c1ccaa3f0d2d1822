//! Mime types of uploads: the client's content type when it gives one, otherwise a
//! type sniffed from the first bytes; and which of them are raster images, the
//! only uploads a front-end takes by default (see [`raster_type`]).

/// The type of bytes nothing else matches.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// The raster image types a front-end stores by default. None of them can carry
/// script (SVG can, and is not among them).
pub const RASTER_TYPES: [&str; 5] = [
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/bmp",
];

/// Whether `mime` (normalized) is one of [`RASTER_TYPES`].
pub fn is_raster(mime: &str) -> bool {
    RASTER_TYPES.contains(&mime)
}

/// The type to store for `bytes` when only raster images are taken: `None` if the
/// bytes are not a raster image. A declared raster type is kept (a client may
/// know better among images); anything else declared gives way to the sniffed
/// type, so bytes that are an image are never served as HTML or script.
pub fn raster_type(bytes: &[u8], declared: Option<&str>) -> Option<String> {
    let sniffed = sniff(bytes);
    if !is_raster(sniffed) {
        return None;
    }
    Some(match declared {
        Some(declared) if is_raster(declared) => declared.to_owned(),
        _ => sniffed.to_owned(),
    })
}

/// Sniffs a mime type from the magic bytes of common image formats.
pub fn sniff(bytes: &[u8]) -> &'static str {
    let starts = |magic: &[u8]| bytes.starts_with(magic);
    if starts(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if starts(b"\xff\xd8\xff") {
        "image/jpeg"
    } else if starts(b"GIF87a") || starts(b"GIF89a") {
        "image/gif"
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        "image/webp"
    } else if starts(b"BM") {
        "image/bmp"
    } else if starts(b"II*\0") || starts(b"MM\0*") {
        "image/tiff"
    } else if starts(b"\0\0\x01\0") {
        "image/x-icon"
    } else if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        match &bytes[8..12] {
            b"avif" | b"avis" => "image/avif",
            b"heic" | b"heix" | b"mif1" => "image/heic",
            _ => OCTET_STREAM,
        }
    } else if starts(b"%PDF-") {
        "application/pdf"
    } else if looks_like_svg(bytes) {
        "image/svg+xml"
    } else {
        OCTET_STREAM
    }
}

fn looks_like_svg(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(1024)];
    let Ok(text) =
        std::str::from_utf8(head).or_else(|e| std::str::from_utf8(&head[..e.valid_up_to()]))
    else {
        return false;
    };
    let mut text = text.trim_start_matches('\u{feff}').trim_start();
    if text.starts_with("<?xml") {
        match text.find("?>") {
            Some(end) => text = text[end + 2..].trim_start(),
            None => return false,
        }
    }
    // Skip comments and a doctype before the root element.
    loop {
        if let Some(rest) = text.strip_prefix("<!--") {
            match rest.find("-->") {
                Some(end) => text = rest[end + 3..].trim_start(),
                None => return false,
            }
        } else if text.starts_with("<!DOCTYPE") || text.starts_with("<!doctype") {
            match text.find('>') {
                Some(end) => text = text[end + 1..].trim_start(),
                None => return false,
            }
        } else {
            break;
        }
    }
    text.starts_with("<svg")
}

fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
}

/// Checks a client-given content type (`type/subtype`, parameters allowed) and
/// returns it lowercased without parameters; `None` if it is malformed.
pub fn normalize(content_type: &str) -> Option<String> {
    let essence = content_type.split(';').next()?.trim();
    let (kind, subtype) = essence.split_once('/')?;
    (is_token(kind) && is_token(subtype)).then(|| essence.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_common_formats() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\nrest"), "image/png");
        assert_eq!(sniff(b"\xff\xd8\xff\xe0"), "image/jpeg");
        assert_eq!(sniff(b"GIF87a.."), "image/gif");
        assert_eq!(sniff(b"GIF89a.."), "image/gif");
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), "image/webp");
        assert_eq!(sniff(b"RIFF\0\0\0\0WAVE"), OCTET_STREAM);
        assert_eq!(sniff(b"BM...."), "image/bmp");
        assert_eq!(sniff(b"II*\0...."), "image/tiff");
        assert_eq!(sniff(b"MM\0*...."), "image/tiff");
        assert_eq!(sniff(b"\0\0\x01\0.."), "image/x-icon");
        assert_eq!(sniff(b"\0\0\0\x1cftypavif...."), "image/avif");
        assert_eq!(sniff(b"\0\0\0\x18ftypheic...."), "image/heic");
        assert_eq!(sniff(b"%PDF-1.7"), "application/pdf");
        assert_eq!(
            sniff(b"<svg xmlns='http://www.w3.org/2000/svg'/>"),
            "image/svg+xml"
        );
        assert_eq!(
            sniff(b"\xef\xbb\xbf<?xml version='1.0'?>\n<!-- c -->\n<!DOCTYPE svg>\n<svg/>"),
            "image/svg+xml"
        );
        assert_eq!(sniff(b"<html>"), OCTET_STREAM);
        assert_eq!(sniff(b""), OCTET_STREAM);
        assert_eq!(sniff(b"plain text"), OCTET_STREAM);
    }

    #[test]
    fn only_raster_images_pass_and_keep_an_image_type() {
        let png = b"\x89PNG\r\n\x1a\n....";
        assert_eq!(raster_type(png, None).as_deref(), Some("image/png"));
        assert_eq!(
            raster_type(png, Some("image/gif")).as_deref(),
            Some("image/gif")
        );
        // A polyglot declared as HTML is stored as what its bytes are.
        assert_eq!(
            raster_type(png, Some("text/html")).as_deref(),
            Some("image/png")
        );
        assert_eq!(raster_type(b"<svg/>", Some("image/svg+xml")), None);
        assert_eq!(raster_type(b"<html><script>", Some("image/png")), None);
        assert_eq!(raster_type(b"%PDF-1.7", None), None);
        assert_eq!(
            raster_type(b"\0\0\x01\0..", None),
            None,
            "icons are not taken"
        );
        assert_eq!(raster_type(b"BM....", None).as_deref(), Some("image/bmp"));
    }

    #[test]
    fn normalizes_content_types() {
        assert_eq!(normalize("image/PNG").as_deref(), Some("image/png"));
        assert_eq!(
            normalize(" image/svg+xml; charset=utf-8").as_deref(),
            Some("image/svg+xml")
        );
        assert_eq!(normalize("image"), None);
        assert_eq!(normalize("image/"), None);
        assert_eq!(normalize("/png"), None);
        assert_eq!(normalize("ima ge/png"), None);
        assert_eq!(normalize("image/png\r\nx: y"), None);
    }
}
