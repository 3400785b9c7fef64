//! Personal data in prompts (family `pii`, off by default; the proxy applies it only to
//! requests to LLM providers): e-mail addresses (`email_address`) and phone numbers
//! (`phone_number`).
//!
//! E-mail: `local@domain` with a local part of 1–64 of `A-Za-z0-9._%+-` (no dot at either end,
//! no `..`), a domain of at least two labels of letters, digits and inner hyphens and an
//! alphabetic TLD of 2–24 letters (or `xn--`). Not reported: documentation and reserved
//! domains (`example.com`, `*.example`, `.test`, `.invalid`, `.localhost`, `.local`,
//! `.internal`…) and placeholder domains (`domain.com`, `yourdomain.com`…); mailboxes of a role
//! rather than a person (`noreply`, `postmaster`, `support`, `info`, `security`…, and anything
//! at a `noreply` domain such as GitHub's `users.noreply.github.com`); `git@host` (SSH remotes);
//! URL credentials (`//user@host`, `user:pass@host`); asset names (`icon@2x.png`) and file
//! extensions as TLDs.
//!
//! Phone: `+` and a country code with 8–15 digits in all (10–15 when written without any
//! separator), groups joined by single spaces, dashes, dots or a parenthesised group
//! (`+1 (415) 555-2671`, `+44 20 7946 0958`, `+33 1 23 45 67 89`); or national formats that
//! only a phone number has: North American `(415) 555-2671` / `415-555-2671` / `415.555.2671`
//! (area and exchange codes 2–9, the fictional exchange 555 skipped), and trunk-prefixed
//! `020 7946 0958` / `06 12 34 56 78` (a leading 0, 10–11 digits in 2–5 groups with one kind
//! of separator). Never a bare run of digits without `+` (an order number, a timestamp), never
//! a date or a version (their group shapes and digit counts do not fit), never inside a
//! longer run of digit groups.

use memchr::memchr_iter;

use super::{Check, Ctx, FamilyFinding, FamilyRule, Side, is_alnum};

fn local_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn domain_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')
}

/// Reserved and documentation domains (RFC 2606, RFC 6761) and private-use names.
const RESERVED_TLDS: &[&[u8]] = &[
    b"example",
    b"test",
    b"invalid",
    b"localhost",
    b"local",
    b"localdomain",
    b"internal",
    b"lan",
    b"home",
    b"corp",
    b"intranet",
    b"private",
    b"arpa",
];

/// File extensions that look like TLDs after `name@2x.`, `file@version.`.
const FILE_TLDS: &[&[u8]] = &[
    b"png", b"jpg", b"jpeg", b"gif", b"svg", b"webp", b"ico", b"bmp", b"avif", b"js", b"mjs",
    b"cjs", b"ts", b"tsx", b"jsx", b"css", b"scss", b"less", b"json", b"yaml", b"yml", b"toml",
    b"lock", b"txt", b"html", b"htm", b"xml", b"map", b"woff", b"woff2", b"ttf", b"otf", b"eot",
    b"mp4", b"webm", b"mp3", b"wav", b"pdf", b"zip", b"tgz", b"gz", b"whl", b"tar", b"jar", b"py",
    b"rb", b"rs", b"go", b"java", b"kt", b"swift", b"vue", b"svelte", b"md", b"rst", b"ini",
    b"cfg", b"conf", b"sh", b"bat", b"exe", b"dll", b"so", b"dylib", b"wasm", b"bin", b"dat",
];

/// Placeholder domains of examples and templates.
const PLACEHOLDER_DOMAINS: &[&[u8]] = &[
    b"domain.com",
    b"yourdomain.com",
    b"mydomain.com",
    b"yourcompany.com",
    b"company.com",
    b"email.com",
    b"acme.com",
    b"foo.com",
    b"bar.com",
    b"foobar.com",
    b"somewhere.com",
    b"host.com",
    b"server.com",
    b"website.com",
    b"site.com",
    b"domain.tld",
    b"email.tld",
    b"example.tld",
];

/// Mailboxes of a role, not a person.
const ROLE_LOCALS: &[&[u8]] = &[
    b"noreply",
    b"no-reply",
    b"no_reply",
    b"donotreply",
    b"do-not-reply",
    b"do_not_reply",
    b"mailer-daemon",
    b"postmaster",
    b"hostmaster",
    b"webmaster",
    b"abuse",
    b"security",
    b"privacy",
    b"support",
    b"info",
    b"contact",
    b"hello",
    b"help",
    b"admin",
    b"sales",
    b"billing",
    b"legal",
    b"press",
    b"jobs",
    b"careers",
    b"feedback",
    b"notifications",
    b"notification",
    b"bounce",
    b"bounces",
    b"team",
    b"dev",
    b"git",
    b"root",
    b"nobody",
    b"user",
    b"username",
    b"you",
    b"your",
    b"yourname",
    b"your.name",
    b"name",
    b"email",
    b"someone",
    b"somebody",
    b"test",
    b"foo",
    b"me",
    b"example",
    b"sample",
];

fn eq_any(v: &[u8], list: &[&[u8]]) -> bool {
    list.iter().any(|x| v.eq_ignore_ascii_case(x))
}

pub(crate) fn scan_emails(ctx: &Ctx, out: &mut Vec<FamilyFinding>) {
    let hay = ctx.hay;
    let n = hay.len();
    let mut after = 0;
    for at in memchr_iter(b'@', hay) {
        if at < after {
            continue;
        }
        let mut l = at;
        while l > 0 && at - l <= 64 && local_byte(hay[l - 1]) {
            l -= 1;
        }
        let mut r = at + 1;
        while r < n && r - at <= 254 && domain_byte(hay[r]) {
            r += 1;
        }
        // Sentence punctuation after the domain is not part of it.
        while r > at + 1 && matches!(hay[r - 1], b'.' | b'-') {
            r -= 1;
        }
        after = r;
        if let Some((start, end, local_len)) = email_at(ctx, l, at, r) {
            ctx.push(
                out,
                FamilyRule::EmailAddress,
                start,
                end,
                Check::Email { local_len },
                false,
            );
        }
    }
}

fn email_at(ctx: &Ctx, l: usize, at: usize, r: usize) -> Option<(usize, usize, u8)> {
    let hay = ctx.hay;
    let local = &hay[l..at];
    let domain = &hay[at + 1..r];
    if local.is_empty()
        || local.len() > 64
        || r - l > 254
        || local[0] == b'.'
        || local[local.len() - 1] == b'.'
        || local.windows(2).any(|w| w == b"..")
    {
        return None;
    }
    match ctx.before(l) {
        Side::Unknown => return None,
        // URL credentials: `//user@host`, `user:pass@host` (but `mailto:a@b`).
        Side::Byte(b'/') | Side::Byte(b'@') | Side::Byte(b'\\') => return None,
        Side::Byte(b':') if !hay[..l - 1].ends_with(b"mailto") => return None,
        _ => {}
    }
    match ctx.at(r) {
        Side::Byte(b'@') | Side::Unknown => return None,
        // `user@host:path` (scp, git remotes), `user@host/...`.
        Side::Byte(b':') | Side::Byte(b'/')
            if hay
                .get(r + 1)
                .is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'/') =>
        {
            return None;
        }
        _ => {}
    }
    let labels = domain.split(|&b| b == b'.');
    let mut count = 0;
    let mut last: &[u8] = b"";
    let mut first: &[u8] = b"";
    for label in labels {
        if label.is_empty()
            || label.len() > 63
            || label[0] == b'-'
            || label[label.len() - 1] == b'-'
        {
            return None;
        }
        if count == 0 {
            first = label;
        }
        last = label;
        count += 1;
    }
    if count < 2 || domain.len() > 253 {
        return None;
    }
    let tld_ok = (2..=24).contains(&last.len()) && last.iter().all(u8::is_ascii_alphabetic)
        || last.len() > 4 && last[..4].eq_ignore_ascii_case(b"xn--");
    if !tld_ok || eq_any(last, RESERVED_TLDS) || eq_any(last, FILE_TLDS) {
        return None;
    }
    // `icon@2x.png`, `pkg@1.2.3`: a scale or a version, not a host.
    if first.first().is_some_and(u8::is_ascii_digit) && count == 2 {
        return None;
    }
    let labels: Vec<&[u8]> = domain.split(|&b| b == b'.').collect();
    if labels.iter().any(|l| l.eq_ignore_ascii_case(b"example"))
        || labels
            .iter()
            .any(|l| l.eq_ignore_ascii_case(b"noreply") || l.eq_ignore_ascii_case(b"no-reply"))
        || eq_any(domain, PLACEHOLDER_DOMAINS)
    {
        return None;
    }
    if eq_any(local, ROLE_LOCALS) {
        return None;
    }
    Some((l, r, local.len() as u8))
}

/// A number-like run: digit groups, an optional leading `+`, separators between groups.
struct Number {
    start: usize,
    end: usize,
    plus: bool,
    groups: [(usize, usize); 8],
    count: usize,
    /// The separators used (space, dash, dot), as a bit set.
    seps: u8,
    /// A group was in parentheses.
    paren: bool,
    digits: usize,
}

fn sep_bit(b: u8) -> u8 {
    match b {
        b' ' => 1,
        b'-' => 2,
        b'.' => 4,
        _ => 0,
    }
}

/// Parses the number run whose first digit group starts at `d` (with `+` or `(` before it
/// when they belong to it).
fn parse_number(hay: &[u8], d: usize) -> Option<Number> {
    let n = hay.len();
    let mut num = Number {
        start: d,
        end: d,
        plus: false,
        groups: [(0, 0); 8],
        count: 0,
        seps: 0,
        paren: false,
        digits: 0,
    };
    if d > 0 && hay[d - 1] == b'+' {
        num.plus = true;
        num.start = d - 1;
    } else if d > 0 && hay[d - 1] == b'(' {
        num.start = d - 1;
    }
    let mut open = num.start < d && hay[d - 1] == b'(';
    num.paren = open;
    let mut i = d;
    loop {
        let g = i;
        while i < n && hay[i].is_ascii_digit() {
            i += 1;
        }
        if num.count == num.groups.len() {
            return None;
        }
        num.groups[num.count] = (g, i);
        num.count += 1;
        num.digits += i - g;
        num.end = i;
        // The separator to the next group: `)`? then one of space/dash/dot? then `(`?
        let mut j = i;
        if open && j < n && hay[j] == b')' {
            open = false;
            j += 1;
            num.end = j;
        }
        let mut bit = 0;
        if j < n && sep_bit(hay[j]) != 0 {
            bit = sep_bit(hay[j]);
            j += 1;
        }
        if !open && j < n && hay[j] == b'(' && j + 1 < n && hay[j + 1].is_ascii_digit() {
            open = true;
            num.paren = true;
            j += 1;
        }
        if j > i && j < n && hay[j].is_ascii_digit() && !(hay[j - 1] == b')' && bit == 0 && j == i)
        {
            num.seps |= bit;
            i = j;
            continue;
        }
        break;
    }
    if open {
        return None;
    }
    Some(num)
}

/// Looks for a phone number whose first digit group is the token at `d`; returns the end of
/// the number run it parsed.
pub(crate) fn scan_phone(ctx: &Ctx, d: usize, out: &mut Vec<FamilyFinding>) -> usize {
    let hay = ctx.hay;
    let Some(num) = parse_number(hay, d) else {
        return d;
    };
    let end = num.end;
    match ctx.before(num.start) {
        Side::Unknown => return end,
        Side::Byte(b)
            if is_alnum(b)
                || matches!(
                    b,
                    b'.' | b'-' | b'_' | b'/' | b'\\' | b'$' | b'#' | b'@' | b'%' | b'+' | b'^' | b'~'
                )
                // `id=0612345678`, `t:4155552671`: without `+`, a value of a key.
                || (!num.plus && matches!(b, b'=' | b':')) =>
        {
            return end;
        }
        _ => {}
    }
    match ctx.at(end) {
        Side::Byte(b) if is_alnum(b) => return end,
        Side::Byte(b'.' | b'-' | b'_' | b'/' | b':' | b'@' | b',') => {
            if let Side::Byte(c) = ctx.at(end + 1)
                && is_alnum(c)
            {
                return end;
            }
        }
        _ => {}
    }
    let g = |k: usize| num.groups[k].1 - num.groups[k].0;
    let first = hay[num.groups[0].0];
    // North American fictional numbers (exchange or area code 555), and made-up digits.
    let mut digits = [0u8; 16];
    let mut nd = 0;
    for &(a, b) in &num.groups[..num.count] {
        for &c in &hay[a..b] {
            if nd < digits.len() {
                digits[nd] = c;
                nd += 1;
            }
        }
    }
    let d = &digits[..nd];
    if num.plus && nd == 11 && d[0] == b'1' && (&d[1..4] == b"555" || &d[4..7] == b"555") {
        return end;
    }
    if super::looks_made_up(d) {
        return end;
    }
    let ok = if num.plus {
        first != b'0'
            && (8..=15).contains(&num.digits)
            && (num.count == 1 && num.digits >= 10 || num.count > 1 && (1..=4).contains(&g(0)))
    } else {
        nanp(hay, &num) || trunk(hay, &num)
    };
    if ok {
        ctx.push(
            out,
            FamilyRule::PhoneNumber,
            num.start,
            end,
            Check::Phone {
                digits: num.digits as u8,
                international: num.plus,
            },
            false,
        );
    }
    end
}

/// `(415) 555-2671`, `415-555-2671`, `415.555.2671`, `1-415-555-2671`.
fn nanp(hay: &[u8], num: &Number) -> bool {
    let g = |k: usize| &hay[num.groups[k].0..num.groups[k].1];
    let skip = usize::from(num.count == 4 && g(0) == b"1");
    if num.count != 3 + skip {
        return false;
    }
    let (area, exchange, line) = (g(skip), g(skip + 1), g(skip + 2));
    if area.len() != 3 || exchange.len() != 3 || line.len() != 4 {
        return false;
    }
    if area[0] < b'2' || exchange[0] < b'2' || exchange == b"555" {
        return false;
    }
    // Without parentheses, one kind of separator ("415 555-2671" is also a table row).
    num.paren || num.seps.count_ones() == 1
}

/// Trunk-prefixed national numbers: `020 7946 0958`, `06 12 34 56 78`, `0170-1234567`.
fn trunk(hay: &[u8], num: &Number) -> bool {
    let lens = || (0..num.count).map(|k| num.groups[k].1 - num.groups[k].0);
    let first = &hay[num.groups[0].0..num.groups[0].1];
    first.len() >= 2
        && first[0] == b'0'
        && first[1] != b'0'
        && (2..=5).contains(&num.count)
        && (10..=11).contains(&num.digits)
        && lens().all(|l| (2..=8).contains(&l))
        && (num.seps.count_ones() == 1 || num.paren && num.seps.count_ones() <= 1)
}
