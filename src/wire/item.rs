//! The headers an item travels with between a front-end and a node, and between
//! nodes: its mime type, its version, the fence of the node it is meant for, and
//! the moved mark; and the headers of a put refused for its fence. Built and read
//! here only.

use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::HeaderMap;

use super::fence::FenceRefusal;
use super::headers;

/// What an item carries besides its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemMeta {
    pub mime: String,
    pub version: u64,
}

/// How an item is sent to a node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PutMarks<'a> {
    /// The token of the node the put is meant for.
    pub fence: Option<&'a str>,
    /// The item is moved from another node (a hand-over), not filled.
    pub moved: bool,
}

impl ItemMeta {
    /// The headers of a put (or of a hit's answer, with no marks).
    pub fn to_headers(&self, marks: PutMarks<'_>) -> Vec<(HeaderName, HeaderValue)> {
        let mime = HeaderValue::from_str(&self.mime)
            .unwrap_or(HeaderValue::from_static(crate::mime::OCTET_STREAM));
        let mut out = vec![
            (CONTENT_TYPE, mime),
            (
                HeaderName::from_static(headers::VERSION),
                HeaderValue::from(self.version),
            ),
        ];
        if marks.moved {
            out.push((
                HeaderName::from_static(headers::MOVED),
                HeaderValue::from_static("1"),
            ));
        }
        if let Some(token) = marks.fence.and_then(|t| HeaderValue::from_str(t).ok()) {
            out.push((HeaderName::from_static(headers::FENCE), token));
        }
        out
    }

    /// Reads an item's headers; a missing or unreadable version is an error (an
    /// item without one cannot be ordered against other versions).
    pub fn from_headers(map: &HeaderMap) -> Result<Self, String> {
        let version = version_of(map)
            .ok_or_else(|| format!("header {} must be a version number", headers::VERSION))?;
        Ok(ItemMeta {
            mime: mime_of(map),
            version,
        })
    }
}

/// An item's version, if its headers carry a readable one.
pub fn version_of(map: &HeaderMap) -> Option<u64> {
    map.get(headers::VERSION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// An item's mime type (`application/octet-stream` if none is readable).
pub fn mime_of(map: &HeaderMap) -> String {
    map.get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or(crate::mime::OCTET_STREAM)
        .to_owned()
}

/// Reads a put's marks. The fence is returned as sent (the node parses it).
pub fn marks_of(map: &HeaderMap) -> PutMarks<'_> {
    PutMarks {
        fence: map.get(headers::FENCE).and_then(|v| v.to_str().ok()),
        moved: map.contains_key(headers::MOVED),
    }
}

/// Why a node refused a put for its fence, as its answer's headers say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FenceAnswer {
    /// The node only forgot floors since the token was issued: nothing stale
    /// got in.
    pub floors_only: bool,
    /// With `floors_only`: the node's current token, which the sender may adopt.
    pub current: Option<String>,
}

/// The headers of a put refused for its fence.
pub fn fence_refusal_headers(
    refusal: FenceRefusal,
    current: &str,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = vec![(
        HeaderName::from_static(headers::FENCE_MISMATCH),
        HeaderValue::from_static(refusal.as_str()),
    )];
    if refusal == FenceRefusal::FloorsForgotten {
        if let Ok(value) = HeaderValue::from_str(current) {
            out.push((HeaderName::from_static(headers::FENCE_CURRENT), value));
        }
    }
    out
}

/// Reads a put's answer: `Some` if the node refused it for its fence.
pub fn fence_answer(map: &HeaderMap) -> Option<FenceAnswer> {
    let mismatch = map.get(headers::FENCE_MISMATCH)?;
    let floors_only = mismatch.as_bytes() == FenceRefusal::FloorsForgotten.as_str().as_bytes();
    let current = map
        .get(headers::FENCE_CURRENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Some(FenceAnswer {
        floors_only,
        current,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: Vec<(HeaderName, HeaderValue)>) -> HeaderMap {
        pairs.into_iter().collect()
    }

    #[test]
    fn an_item_reads_back_as_it_was_sent() {
        let meta = ItemMeta {
            mime: "image/png".into(),
            version: 42,
        };
        let sent = map(meta.to_headers(PutMarks {
            fence: Some("3.1"),
            moved: true,
        }));
        assert_eq!(ItemMeta::from_headers(&sent), Ok(meta));
        let marks = marks_of(&sent);
        assert_eq!(marks.fence, Some("3.1"));
        assert!(marks.moved);
        let bare = map(ItemMeta {
            mime: "bad\nmime".into(),
            version: 1,
        }
        .to_headers(PutMarks::default()));
        assert_eq!(marks_of(&bare), PutMarks::default());
        assert_eq!(bare[CONTENT_TYPE], crate::mime::OCTET_STREAM);
    }

    #[test]
    fn an_item_without_a_version_is_refused() {
        let mut sent = HeaderMap::new();
        assert!(ItemMeta::from_headers(&sent).is_err());
        sent.insert(headers::VERSION, HeaderValue::from_static("seven"));
        assert!(ItemMeta::from_headers(&sent).is_err());
    }

    #[test]
    fn only_a_floors_refusal_names_the_current_token() {
        let floors = map(fence_refusal_headers(FenceRefusal::FloorsForgotten, "9.2"));
        assert_eq!(
            fence_answer(&floors),
            Some(FenceAnswer {
                floors_only: true,
                current: Some("9.2".into())
            })
        );
        let reset = map(fence_refusal_headers(FenceRefusal::Reset, "9.2"));
        assert_eq!(
            fence_answer(&reset),
            Some(FenceAnswer {
                floors_only: false,
                current: None
            })
        );
        assert_eq!(fence_answer(&HeaderMap::new()), None);
    }
}
