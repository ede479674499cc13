//! Credentials in URLs (`https://user:password@host/`): refused in every URL field of the
//! contract, and cut out of any text that is logged or shown, so a password typed into a mirror
//! URL never reaches a log line, a retry warning or an error message.

/// `text` with the userinfo (`user:password@`) of every URL in it replaced by `***@`.
pub fn redact_userinfo(text: &str) -> String {
    let mut shown = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        shown.push_str(head);
        // The authority ends where the path, query or fragment starts, or where the URL does
        // within a longer text.
        let end = tail
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '"' | '\'' | '`' | '<' | '>') || c.is_whitespace()
            })
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(userinfo_end) => {
                shown.push_str("***@");
                shown.push_str(&authority[userinfo_end + 1..]);
            }
            None => shown.push_str(authority),
        }
        rest = &tail[end..];
    }
    shown.push_str(rest);
    shown
}

/// A URL field's rule: no userinfo. The message does not repeat the URL (it holds the secret).
pub fn check_no_userinfo(url: &str) -> Result<(), String> {
    match redact_userinfo(url) == url {
        true => Ok(()),
        false => Err(
            "must not hold credentials (user:password@ in the URL); see docs/artifacts.md for private mirrors"
                .into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_the_userinfo_of_every_url_in_a_text() {
        assert_eq!(
            redact_userinfo("kubelet: https://user:pw@mirror.test:8443/release/kubelet failed"),
            "kubelet: https://***@mirror.test:8443/release/kubelet failed"
        );
        assert_eq!(
            redact_userinfo("from \"http://a:b@one\" to http://token@two?x=a@b"),
            "from \"http://***@one\" to http://***@two?x=a@b"
        );
        // An @ in the path is not userinfo; text without URLs is unchanged.
        let plain = "https://mirror.test/@scope/pkg and user@example.com";
        assert_eq!(redact_userinfo(plain), plain);
    }

    #[test]
    fn refuses_userinfo_without_repeating_it() {
        assert!(check_no_userinfo("https://dl.k8s.io/release").is_ok());
        assert!(check_no_userinfo("file:///srv/mirror").is_ok());
        let refused = check_no_userinfo("https://user:s3cret@mirror.test").unwrap_err();
        assert!(!refused.contains("s3cret"), "{refused}");
        assert!(check_no_userinfo("https://user@mirror.test").is_err());
    }
}
