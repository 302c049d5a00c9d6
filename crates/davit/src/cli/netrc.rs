//! A tiny `~/.netrc` reader: `machine`, `default`, `login`, `password` (and `account`/`macdef`
//! skipped), which is all curl-compatible files need for HTTP credentials.

/// Credentials for `host` from netrc text: the matching `machine` entry, else `default`.
pub fn lookup(text: &str, host: &str) -> Option<(String, Option<String>)> {
    let mut tokens = text.split_whitespace();
    // (is this entry the one we want, login, password) of the entry being read.
    let mut found: Option<(Option<String>, Option<String>)> = None;
    let mut default: Option<(Option<String>, Option<String>)> = None;
    let mut current: Option<(bool, bool)> = None; // (matches host, is default)
    let mut login = None;
    let mut password = None;
    let finish = |current: Option<(bool, bool)>,
                  login: &mut Option<String>,
                  password: &mut Option<String>,
                  found: &mut Option<(Option<String>, Option<String>)>,
                  default: &mut Option<(Option<String>, Option<String>)>| {
        if let Some((matches, is_default)) = current {
            let entry = (login.take(), password.take());
            if matches && found.is_none() {
                *found = Some(entry);
            } else if is_default && default.is_none() {
                *default = Some(entry);
            }
        }
        login.take();
        password.take();
    };
    while let Some(tok) = tokens.next() {
        match tok {
            "machine" => {
                finish(current, &mut login, &mut password, &mut found, &mut default);
                let name = tokens.next().unwrap_or("");
                current = Some((name.eq_ignore_ascii_case(host), false));
            }
            "default" => {
                finish(current, &mut login, &mut password, &mut found, &mut default);
                current = Some((false, true));
            }
            "login" => login = tokens.next().map(str::to_owned),
            "password" => password = tokens.next().map(str::to_owned),
            "account" => {
                tokens.next();
            }
            "macdef" => {
                // A macro runs to the next blank line, which split_whitespace cannot see; macros
                // are for ftp and rare enough that stopping here is the safe choice.
                break;
            }
            _ => {}
        }
    }
    finish(current, &mut login, &mut password, &mut found, &mut default);
    let (login, password) = found.or(default)?;
    Some((login?, password))
}

#[cfg(test)]
mod tests {
    use super::lookup;

    #[test]
    fn machine_then_default() {
        let text = "machine a.example login al password p1\n\
                    machine b.example\n  login bo\n  password p2\ndefault login anon password x";
        assert_eq!(
            lookup(text, "b.example"),
            Some(("bo".into(), Some("p2".into())))
        );
        assert_eq!(
            lookup(text, "A.example"),
            Some(("al".into(), Some("p1".into())))
        );
        assert_eq!(lookup(text, "c"), Some(("anon".into(), Some("x".into()))));
        assert_eq!(lookup("machine z login u", "z"), Some(("u".into(), None)));
        assert_eq!(lookup("machine z password p", "z"), None);
        assert_eq!(lookup("", "z"), None);
    }
}
