//! Payment card numbers (`payment_card`, family `financial`).
//!
//! 13–19 digits, plain or grouped by single spaces or dashes as cards print them (4-4-4-4,
//! 4-4-4-4-3, Amex 4-6-5, Diners 4-6-4), with a real issuer prefix and a length that issuer
//! uses, Luhn-valid, and standing alone: not glued to letters, digits, `.`, `-`, `_`, `+`, `/`,
//! `$`, `#`, `@` or `%` on either side (order ids, decimals, versions, hashes, UUIDs, phone
//! numbers written with `+`), and not part of a longer run of digit groups (tables of numbers).

use super::{Check, Ctx, FamilyFinding, FamilyRule, Side, is_alnum, looks_made_up, testvalues};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CardNetwork {
    Visa,
    Mastercard,
    Amex,
    Discover,
    Jcb,
    Diners,
    UnionPay,
    Maestro,
}

impl CardNetwork {
    pub fn name(self) -> &'static str {
        match self {
            CardNetwork::Visa => "Visa",
            CardNetwork::Mastercard => "Mastercard",
            CardNetwork::Amex => "American Express",
            CardNetwork::Discover => "Discover",
            CardNetwork::Jcb => "JCB",
            CardNetwork::Diners => "Diners Club",
            CardNetwork::UnionPay => "UnionPay",
            CardNetwork::Maestro => "Maestro",
        }
    }
}

fn prefix(d: &[u8], n: usize) -> u32 {
    d[..n]
        .iter()
        .fold(0, |acc, &b| acc * 10 + u32::from(b - b'0'))
}

/// The network whose prefix and length `d` (ASCII digits) has.
pub fn network(d: &[u8]) -> Option<CardNetwork> {
    let len = d.len();
    if !(13..=19).contains(&len) {
        return None;
    }
    let (p2, p3, p4, p6) = (prefix(d, 2), prefix(d, 3), prefix(d, 4), prefix(d, 6));
    if d[0] == b'4' {
        matches!(len, 13 | 16 | 19).then_some(CardNetwork::Visa)
    } else if (51..=55).contains(&p2) || (2221..=2720).contains(&p4) {
        (len == 16).then_some(CardNetwork::Mastercard)
    } else if p2 == 34 || p2 == 37 {
        (len == 15).then_some(CardNetwork::Amex)
    } else if (3528..=3589).contains(&p4) {
        (len >= 16).then_some(CardNetwork::Jcb)
    } else if (300..=305).contains(&p3) || p4 == 3095 || p2 == 36 || p2 == 38 || p2 == 39 {
        (len >= 14).then_some(CardNetwork::Diners)
    } else if p4 == 6011 || (644..=649).contains(&p3) || p2 == 65 || (622126..=622925).contains(&p6)
    {
        (len >= 16).then_some(CardNetwork::Discover)
    } else if p2 == 62 {
        (len >= 16).then_some(CardNetwork::UnionPay)
    } else if matches!(
        p4,
        5018 | 5020 | 5038 | 5893 | 6304 | 6759 | 6761 | 6762 | 6763
    ) {
        Some(CardNetwork::Maestro)
    } else {
        None
    }
}

pub fn luhn(d: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, &b) in d.iter().rev().enumerate() {
        let mut v = u32::from(b - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// Grouped shapes a card is printed in.
const SHAPES: [&[usize]; 4] = [&[4, 4, 4, 4], &[4, 4, 4, 4, 3], &[4, 6, 5], &[4, 6, 4]];

/// Bytes that glue a number to an identifier, a decimal, a version or a phone number.
fn glue(b: u8) -> bool {
    matches!(
        b,
        b'.' | b'-' | b'_' | b'+' | b'/' | b'\\' | b'$' | b'#' | b'@' | b'%' | b'^' | b'~'
    )
}

/// Looks for a card starting at the digit token at `start`; returns where the number-like run
/// it parsed ends (digit groups joined by single spaces or dashes).
pub(crate) fn scan(ctx: &Ctx, start: usize, out: &mut Vec<FamilyFinding>) -> usize {
    let hay = ctx.hay;
    let n = hay.len();
    let mut groups = [0usize; 6];
    let mut count = 0;
    let mut digits = [0u8; 19];
    let mut nd = 0;
    let mut sep = 0u8;
    let mut i = start;
    let mut too_long = false;
    loop {
        let g = i;
        while i < n && hay[i].is_ascii_digit() {
            if nd < digits.len() {
                digits[nd] = hay[i];
            }
            nd += 1;
            i += 1;
        }
        if count < groups.len() {
            groups[count] = i - g;
        }
        count += 1;
        // Another group joined by the same single separator?
        if i + 1 < n
            && (hay[i] == b' ' || hay[i] == b'-')
            && (sep == 0 || sep == hay[i])
            && hay[i + 1].is_ascii_digit()
        {
            sep = hay[i];
            i += 1;
            if count >= groups.len() || nd > 19 {
                too_long = true;
            }
            if too_long && count > 8 {
                // A table of numbers: skip the rest of it without recording.
                while i < n && (hay[i].is_ascii_digit() || hay[i] == sep) {
                    i += 1;
                }
                return i;
            }
            continue;
        }
        break;
    }
    let end = i;
    if too_long || !(13..=19).contains(&nd) {
        return end;
    }
    let shape = &groups[..count.min(groups.len())];
    if count > 1 && !SHAPES.contains(&shape) {
        return end;
    }
    match ctx.before(start) {
        Side::Unknown => return end,
        Side::Byte(b) if is_alnum(b) || glue(b) => return end,
        _ => {}
    }
    match ctx.at(end) {
        Side::Byte(b) if is_alnum(b) => return end,
        Side::Byte(b) if glue(b) || b == b':' => {
            // `….5`, `…-abc`, `…/x`: the number goes on as something else.
            if let Side::Byte(c) = ctx.at(end + 1)
                && is_alnum(c)
            {
                return end;
            }
        }
        // A separator the grouping did not take ("4111 1111 1111 1111 -…" is fine, but
        // "…1111 2" was taken as a group): nothing to check.
        _ => {}
    }
    let d = &digits[..nd];
    let Some(network) = network(d) else {
        return end;
    };
    if !luhn(d) {
        return end;
    }
    let test = testvalues::is_test_card(d) || looks_made_up(d);
    ctx.push(
        out,
        FamilyRule::PaymentCard,
        start,
        end,
        Check::Card {
            network,
            digits: nd as u8,
        },
        test,
    );
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_and_lengths() {
        assert_eq!(network(b"4539148803436467"), Some(CardNetwork::Visa));
        assert_eq!(network(b"453914880343646"), None, "15-digit Visa");
        assert_eq!(network(b"2221000000000009"), Some(CardNetwork::Mastercard));
        assert_eq!(network(b"2721000000000000"), None);
        assert_eq!(network(b"371449635398431"), Some(CardNetwork::Amex));
        assert_eq!(network(b"36227206271667"), Some(CardNetwork::Diners));
        assert_eq!(network(b"6011000990139424"), Some(CardNetwork::Discover));
        assert_eq!(network(b"6221260000000000"), Some(CardNetwork::Discover));
        assert_eq!(network(b"6200000000000005"), Some(CardNetwork::UnionPay));
        assert_eq!(network(b"3566002020360505"), Some(CardNetwork::Jcb));
        assert_eq!(network(b"6759649826438453"), Some(CardNetwork::Maestro));
        assert_eq!(network(b"1234567890123456"), None);
        assert_eq!(network(b"9007199254740991"), None);
    }

    #[test]
    fn luhn_check() {
        assert!(luhn(b"4539148803436467"));
        assert!(!luhn(b"4539148803436468"));
        assert!(luhn(b"79927398713"));
    }
}
