//! The documented JSON envelope every API answer is wrapped in.
//!
//! Success: `{"success": "true", ...fields}`. Failure:
//! `{"success": "false", "error": {"code": <HTTP status>, "message": "..."}}`.
//! A failure's `code` is always its HTTP status.

use serde::{Deserialize, Serialize};

/// A success answer: `"success": "true"` followed by the fields of `T`.
#[derive(Debug, Serialize)]
pub struct Success<T> {
    success: &'static str,
    #[serde(flatten)]
    pub body: T,
}

impl<T: Serialize> Success<T> {
    pub fn new(body: T) -> Self {
        Success {
            success: "true",
            body,
        }
    }
}

/// A success answer with no fields of its own.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Empty {}

/// A body whose fields sit under `content` (most documented answers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Content<T> {
    pub content: T,
}

/// A failure answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub success: String,
    pub error: ErrorDetail,
}

/// What went wrong, in a failure answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// The HTTP status of the answer.
    pub code: u16,
    pub message: String,
}

impl Failure {
    pub fn new(status: u16, message: &str) -> Self {
        Failure {
            success: "false".to_owned(),
            error: ErrorDetail {
                code: status,
                message: message.to_owned(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_puts_the_flag_before_the_body_fields() {
        #[derive(Serialize)]
        struct Version {
            version: u64,
        }
        let text = serde_json::to_string(&Success::new(Version { version: 7 })).unwrap();
        assert_eq!(text, r#"{"success":"true","version":7}"#);
        let text = serde_json::to_string(&Success::new(Empty {})).unwrap();
        assert_eq!(text, r#"{"success":"true"}"#);
    }

    #[test]
    fn failure_carries_the_status_as_its_code() {
        let text = serde_json::to_string(&Failure::new(404, "no such key")).unwrap();
        assert_eq!(
            text,
            r#"{"success":"false","error":{"code":404,"message":"no such key"}}"#
        );
        let back: Failure = serde_json::from_str(&text).unwrap();
        assert_eq!(back.error.code, 404);
    }
}
