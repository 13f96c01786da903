//! The names of the registry API (OCI distribution spec, as container runtimes read them): registry
//! hosts, repository paths, tags and sha256 digests. Shared by `oci://` model URLs ([`crate::oci`])
//! and the operator's image references. Pure: no I/O; the reasons quote the offending part only.

/// Whether the first path segment names a registry host rather than a repository component: it
/// has a `.` (a domain) or a `:` (a port), or is `localhost` (the runtime's own rule).
pub fn is_registry_host(segment: &str) -> bool {
    segment.contains('.') || segment.contains(':') || segment == "localhost"
}

/// `name[:tag]` split at its tag: what follows the last ':' after the last '/' (a ':' before it
/// is a port).
pub fn split_tag(name_and_tag: &str) -> (&str, Option<&str>) {
    let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
    match name_and_tag[last_slash..].rfind(':') {
        Some(colon) => {
            let colon = last_slash + colon;
            (&name_and_tag[..colon], Some(&name_and_tag[colon + 1..]))
        }
        None => (name_and_tag, None),
    }
}

/// `sha256:` and 64 lowercase hex digits (the only digest the runtime and this operator accept).
pub fn parse_digest(digest: &str) -> Result<String, String> {
    let Some(hex) = digest.strip_prefix("sha256:") else {
        return Err(format!(
            "the digest {digest:?} is not sha256:<64 hex digits>"
        ));
    };
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(format!(
            "the digest {digest:?} is not sha256: followed by 64 lowercase hex digits"
        ));
    }
    Ok(digest.to_string())
}

/// A tag: 1 to 128 of `[A-Za-z0-9_.-]`, not starting with `.` or `-`.
pub fn check_tag(tag: &str) -> Result<(), String> {
    let valid = (1..=128).contains(&tag.len())
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && !tag.starts_with(['.', '-']);
    if valid {
        Ok(())
    } else {
        Err(format!(
            "the tag {tag:?} is not 1-128 letters, digits, '_', '.' or '-' starting with a letter, digit or '_'"
        ))
    }
}

/// A host (letters, digits, `.`, `-`) or a bracketed IPv6 address, optionally `:port`.
pub fn check_registry(registry: &str) -> Result<(), String> {
    let (host_ok, port) = match registry.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((ip, port)) => (ip.parse::<std::net::Ipv6Addr>().is_ok(), port),
            None => (false, ""),
        },
        None => {
            let (host, port) = match registry.find(':') {
                Some(colon) => registry.split_at(colon),
                None => (registry, ""),
            };
            let ok = !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-".contains(&b))
                && !host.starts_with(['.', '-'])
                && !host.ends_with(['.', '-']);
            (ok, port)
        }
    };
    // `port` is empty or `:<1-65535>`.
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    if host_ok && port_ok {
        Ok(())
    } else {
        Err(format!(
            "the registry {registry:?} is not a host name or address with an optional port"
        ))
    }
}

/// Path components of lowercase letters and digits, joined inside by `.`, `_`, `__` or dashes.
pub fn check_repository(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("the repository name is empty".into());
    }
    if path.len() > 255 {
        return Err("the repository name is longer than 255 characters".into());
    }
    for component in path.split('/') {
        if !is_path_component(component) {
            return Err(format!(
                "the repository path component {component:?} must be lowercase letters and digits, separated by '.', '_', '__' or '-' (no uppercase, not empty)"
            ));
        }
    }
    Ok(())
}

fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.first().is_none_or(|b| !alnum(b)) || bytes.last().is_none_or(|b| !alnum(b)) {
        return false;
    }
    // Separators between alphanumeric runs: '.', '_', '__' or any number of '-'.
    let mut i = 0;
    while i < bytes.len() {
        if alnum(&bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(&bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let ok = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}
