//! IBANs (`iban`, family `financial`).
//!
//! A country code with a registered IBAN format, two check digits (02–98), and a BBAN of the
//! country's registered length and character classes (digits, letters, either), upper case,
//! compact (`DE89370400440532013000`) or in groups of four joined by single spaces
//! (`DE89 3704 0044 0532 0130 00`), with ISO 7064 mod-97 == 1, standing alone (not glued to
//! letters, digits, `.`, `-`, `_`, `/`, `@`… on either side).

use super::{Check, Ctx, FamilyFinding, FamilyRule, Side, is_alnum, looks_made_up};

/// (country, IBAN length, BBAN format: counts of `n` digits, `a` upper-case letters, `c`
/// either), from the SWIFT IBAN registry as the PyPI package `schwifty` ships it; printed by
/// `bench/families/gen_iban_table.py`. Sorted by country.
const IBAN_FORMATS: &[([u8; 2], u8, &str)] = &[
    // 105 countries, from schwifty-2026.10.1-py3-none-any.whl
    (*b"AD", 24, "4n4n12c"),
    (*b"AE", 23, "3n16n"),
    (*b"AL", 28, "8n16c"),
    (*b"AT", 20, "5n11n"),
    (*b"AX", 18, "3n11n"),
    (*b"AZ", 28, "4a20c"),
    (*b"BA", 20, "3n3n8n2n"),
    (*b"BE", 16, "3n7n2n"),
    (*b"BG", 22, "4a4n2n8c"),
    (*b"BH", 22, "4a14c"),
    (*b"BI", 27, "5n5n11n2n"),
    (*b"BL", 27, "5n5n11c2n"),
    (*b"BR", 29, "8c5n10n1c1c"),
    (*b"BY", 28, "4c4n16c"),
    (*b"CH", 21, "5n12c"),
    (*b"CR", 22, "4n14n"),
    (*b"CY", 28, "3n5n16c"),
    (*b"CZ", 24, "4n6n10n"),
    (*b"DE", 22, "8n10n"),
    (*b"DJ", 27, "23n"),
    (*b"DK", 18, "4n9n1n"),
    (*b"DO", 28, "4c20n"),
    (*b"EE", 20, "2n2n11n1n"),
    (*b"EG", 29, "4n4n17n"),
    (*b"ES", 24, "4n4n1n1n10n"),
    (*b"FI", 18, "3n11n"),
    (*b"FK", 18, "2a12n"),
    (*b"FO", 18, "4n9n1n"),
    (*b"FR", 27, "5n5n11c2n"),
    (*b"GB", 22, "4a6n8n"),
    (*b"GE", 22, "2a16n"),
    (*b"GF", 27, "5n5n11c2n"),
    (*b"GG", 22, "4a6n8n"),
    (*b"GI", 23, "4a15c"),
    (*b"GL", 18, "4n9n1n"),
    (*b"GP", 27, "5n5n11c2n"),
    (*b"GR", 27, "3n4n16c"),
    (*b"GT", 28, "4c20c"),
    (*b"HN", 28, "4a20n"),
    (*b"HR", 21, "7n10n"),
    (*b"HU", 28, "3n4n1n15n1n"),
    (*b"IE", 22, "4a6n8n"),
    (*b"IL", 23, "3n3n13n"),
    (*b"IM", 22, "4a6n8n"),
    (*b"IQ", 23, "4a3n12n"),
    (*b"IS", 26, "4n2n6n10n"),
    (*b"IT", 27, "1a5n5n12c"),
    (*b"JE", 22, "4a6n8n"),
    (*b"JO", 30, "4a4n18c"),
    (*b"KW", 30, "4a22c"),
    (*b"KZ", 20, "3n13c"),
    (*b"LB", 28, "4n20c"),
    (*b"LC", 32, "4a24c"),
    (*b"LI", 21, "5n12c"),
    (*b"LT", 20, "5n11n"),
    (*b"LU", 20, "3n13c"),
    (*b"LV", 21, "4a13c"),
    (*b"LY", 25, "3n3n15n"),
    (*b"MC", 27, "5n5n11c2n"),
    (*b"MD", 24, "2c18c"),
    (*b"ME", 22, "3n13n2n"),
    (*b"MF", 27, "5n5n11c2n"),
    (*b"MK", 19, "3n10c2n"),
    (*b"MN", 20, "4n12n"),
    (*b"MQ", 27, "5n5n11c2n"),
    (*b"MR", 27, "5n5n11n2n"),
    (*b"MT", 31, "4a5n18c"),
    (*b"MU", 30, "4a2n2n12n3n3a"),
    (*b"NC", 27, "5n5n11c2n"),
    (*b"NI", 28, "4a20n"),
    (*b"NL", 18, "4a10n"),
    (*b"NO", 15, "4n6n1n"),
    (*b"OM", 23, "3n16c"),
    (*b"PF", 27, "5n5n11c2n"),
    (*b"PK", 24, "4a16c"),
    (*b"PL", 28, "8n16n"),
    (*b"PM", 27, "5n5n11c2n"),
    (*b"PS", 29, "4a21c"),
    (*b"PT", 25, "4n4n11n2n"),
    (*b"QA", 29, "4a21c"),
    (*b"RE", 27, "5n5n11c2n"),
    (*b"RO", 24, "4a16c"),
    (*b"RS", 22, "3n13n2n"),
    (*b"RU", 33, "9n5n15c"),
    (*b"SA", 24, "2n18c"),
    (*b"SC", 31, "4a2n2n16n3a"),
    (*b"SD", 18, "2n12n"),
    (*b"SE", 24, "3n16n1n"),
    (*b"SI", 19, "5n8n2n"),
    (*b"SK", 24, "4n6n10n"),
    (*b"SM", 27, "1a5n5n12c"),
    (*b"SO", 23, "4n3n12n"),
    (*b"ST", 25, "4n4n11n2n"),
    (*b"SV", 28, "4a20n"),
    (*b"TF", 27, "5n5n11c2n"),
    (*b"TL", 23, "3n14n2n"),
    (*b"TN", 24, "2n3n13n2n"),
    (*b"TR", 26, "5n1n16c"),
    (*b"UA", 29, "6n19c"),
    (*b"VA", 22, "3n15n"),
    (*b"VG", 24, "4a16n"),
    (*b"WF", 27, "5n5n11c2n"),
    (*b"XK", 20, "4n10n2n"),
    (*b"YE", 30, "4a4n18c"),
    (*b"YT", 27, "5n5n11c2n"),
];

pub fn format(country: [u8; 2]) -> Option<(usize, &'static str)> {
    IBAN_FORMATS
        .binary_search_by(|(c, _, _)| c.cmp(&country))
        .ok()
        .map(|i| (usize::from(IBAN_FORMATS[i].1), IBAN_FORMATS[i].2))
}

fn glue(b: u8) -> bool {
    matches!(
        b,
        b'.' | b'-' | b'_' | b'+' | b'/' | b'\\' | b'$' | b'#' | b'@' | b'%' | b'^' | b'~'
    )
}

fn upper_alnum(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}

/// Whether `bban` has the character classes of `spec` (`4n4n12c`).
fn bban_matches(bban: &[u8], spec: &str) -> bool {
    let mut pos = 0;
    let mut count = 0usize;
    for c in spec.bytes() {
        if c.is_ascii_digit() {
            count = count * 10 + usize::from(c - b'0');
            continue;
        }
        let Some(part) = bban.get(pos..pos + count) else {
            return false;
        };
        let ok = match c {
            b'n' => part.iter().all(u8::is_ascii_digit),
            b'a' => part.iter().all(u8::is_ascii_uppercase),
            _ => part.iter().all(|&b| upper_alnum(b)),
        };
        if !ok {
            return false;
        }
        pos += count;
        count = 0;
    }
    pos == bban.len()
}

/// ISO 7064 mod 97-10 over the IBAN moved by four characters.
pub fn mod97(iban: &[u8]) -> u32 {
    let mut r = 0u32;
    for &c in iban[4..].iter().chain(&iban[..4]) {
        r = if c.is_ascii_digit() {
            (r * 10 + u32::from(c - b'0')) % 97
        } else {
            (r * 100 + u32::from(c - b'A') + 10) % 97
        };
    }
    r
}

/// Looks for an IBAN at the token `start..end` (it has upper-case letters and digits).
pub(crate) fn scan(ctx: &Ctx, start: usize, end: usize, out: &mut Vec<FamilyFinding>) {
    let hay = ctx.hay;
    let t = &hay[start..end];
    if !(t[0].is_ascii_uppercase()
        && t[1].is_ascii_uppercase()
        && t[2].is_ascii_digit()
        && t[3].is_ascii_digit())
    {
        return;
    }
    let Some((len, spec)) = format([t[0], t[1]]) else {
        return;
    };
    match ctx.before(start) {
        Side::Byte(b) if glue(b) => return,
        Side::Unknown => return,
        _ => {}
    }
    let mut buf = [0u8; 34];
    let stop;
    if t.len() == len {
        if !t.iter().all(|&b| upper_alnum(b)) {
            return;
        }
        buf[..len].copy_from_slice(t);
        stop = end;
    } else if t.len() == 4 {
        // Groups of four joined by single spaces, the last one shorter.
        buf[..4].copy_from_slice(t);
        let mut have = 4;
        let mut pos = end;
        while have < len {
            let want = (len - have).min(4);
            if hay.get(pos) != Some(&b' ') {
                return;
            }
            let g = pos + 1;
            let Some(group) = hay.get(g..g + want) else {
                return;
            };
            if !group.iter().all(|&b| upper_alnum(b))
                || hay.get(g + want).is_some_and(|&b| is_alnum(b))
            {
                return;
            }
            buf[have..have + want].copy_from_slice(group);
            have += want;
            pos = g + want;
        }
        // More digit groups after it: part of a table of numbers, or a longer number.
        if hay.get(pos) == Some(&b' ') && hay.get(pos + 1).is_some_and(u8::is_ascii_digit) {
            return;
        }
        stop = pos;
    } else {
        return;
    }
    match ctx.at(stop) {
        Side::Byte(b) if is_alnum(b) => return,
        Side::Byte(b) if glue(b) => {
            if let Side::Byte(c) = ctx.at(stop + 1)
                && is_alnum(c)
            {
                return;
            }
        }
        _ => {}
    }
    let iban = &buf[..len];
    let check = u32::from(iban[2] - b'0') * 10 + u32::from(iban[3] - b'0');
    if !(2..=98).contains(&check) || !bban_matches(&iban[4..], spec) || mod97(iban) != 1 {
        return;
    }
    let test = looks_made_up(&iban[4..]);
    ctx.push(
        out,
        FamilyRule::Iban,
        start,
        stop,
        Check::Iban {
            country: [iban[0], iban[1]],
            length: len as u8,
        },
        test,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_table_is_sorted_and_consistent() {
        assert!(IBAN_FORMATS.windows(2).all(|w| w[0].0 < w[1].0));
        for (cc, len, spec) in IBAN_FORMATS {
            let mut total = 0;
            let mut count = 0;
            for c in spec.bytes() {
                if c.is_ascii_digit() {
                    count = count * 10 + usize::from(c - b'0');
                } else {
                    total += count;
                    count = 0;
                }
            }
            assert_eq!(
                total + 4,
                usize::from(*len),
                "{}",
                String::from_utf8_lossy(cc)
            );
        }
        assert_eq!(format(*b"DE"), Some((22, "8n10n")));
        assert_eq!(format(*b"GB").map(|f| f.0), Some(22));
        assert_eq!(format(*b"US"), None);
    }

    #[test]
    fn mod97_of_known_ibans() {
        assert_eq!(mod97(b"DE89370400440532013000"), 1);
        assert_eq!(mod97(b"GB29NWBK60161331926819"), 1);
        assert_ne!(mod97(b"GB29NWBK60161331926818"), 1);
    }
}
