//! Published test values: numbers and keys that payment providers, wallets and the standards
//! themselves publish for tests and documentation. Agents paste them into test code all day;
//! they give nobody access to anything, so reporting them would only teach operators to ignore
//! the family. [`super::FamilyScanner::report_test_values`] reports them anyway (marked).
//!
//! Besides these lists, values that look made up are treated the same way (`looks_made_up`:
//! one digit dominating, a short repeated pattern, a 7-long ascending or descending run), and
//! so are BIP-39 phrases of one repeated word (plus its checksum word) or of degenerate
//! entropy. The lists are data, checked by the unit tests below; the private keys are derived
//! by `bench/families/gen_test_values.py`.

/// Test card numbers of Stripe, Adyen, Braintree, PayPal and the card networks' own
/// documentation (all Luhn-valid, each with a known network: checked by a test).
const TEST_CARDS: &[&str] = &[
    "2222400070000005",
    "2222420000001113",
    "2222630000001125",
    "2223003122003222",
    "3056930009020004",
    "30569309025904",
    "3530111333300000",
    "3566002020360505",
    "3566111111111113",
    "36227206271667",
    "371449635398431",
    "378282246310005",
    "378734493671000",
    "38520000023237",
    "4000000000000002",
    "4000000000000010",
    "4000000000000069",
    "4000000000000119",
    "4000000000000127",
    "4000000000003063",
    "4000000000003220",
    "4000000000009995",
    "4000002500003155",
    "4000002760003184",
    "4000003720000278",
    "4000003800000008",
    "4000008400001280",
    "4000008400001629",
    "4000020000000000",
    "4000056655665556",
    "4000160000000004",
    "4002690000000008",
    "4012888888881881",
    "4035501000000008",
    "4035874000424977",
    "4100000000000019",
    "4111111111111111",
    "4131840000000003",
    "4222222222222",
    "4242424242424242",
    "4360000001000005",
    "4400000000000008",
    "4444333322221111",
    "4462030000000000",
    "4484070000000000",
    "4484600000000004",
    "4571000000000001",
    "4607000000000009",
    "4917300800000000",
    "4917610000000000",
    "4917610000000000003",
    "4977949494949497",
    "4988080000000000",
    "4988438843884305",
    "5100290029002909",
    "5105105105105100",
    "5200000000001005",
    "5200828282828210",
    "5424000000000015",
    "5431111111111111",
    "5454545454545454",
    "5555555555554444",
    "5555555555554477",
    "6011000400000000",
    "6011000990139424",
    "6011111111111117",
    "6011601160116611",
    "6011981111111113",
    "6200000000000005",
    "6205500000000000004",
    "6250947000000014",
    "6555900000604105",
    "6759649826438453",
];

pub(crate) fn is_test_card(digits: &[u8]) -> bool {
    TEST_CARDS.iter().any(|c| c.as_bytes() == digits)
}

const fn hex32(s: &str) -> [u8; 32] {
    let b = s.as_bytes();
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = (nibble(b[2 * i]) << 4) | nibble(b[2 * i + 1]);
        i += 1;
    }
    out
}

const fn nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => panic!("not lower-case hex"),
    }
}

/// secp256k1 private keys published as test keys: the accounts every Hardhat, Anvil and
/// Foundry node starts with (from the mnemonic `test test … junk`), the keys of the BIP-32
/// test vectors 1 and 2, and the Bitcoin wiki's WIF example.
const TEST_KEYS: &[[u8; 32]] = &[
    // Hardhat/Anvil account 0
    hex32("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"),
    // Hardhat/Anvil account 1
    hex32("59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"),
    // Hardhat/Anvil account 2
    hex32("5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"),
    // Hardhat/Anvil account 3
    hex32("7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6"),
    // Hardhat/Anvil account 4
    hex32("47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a"),
    // Hardhat/Anvil account 5
    hex32("8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba"),
    // Hardhat/Anvil account 6
    hex32("92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e"),
    // Hardhat/Anvil account 7
    hex32("4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356"),
    // Hardhat/Anvil account 8
    hex32("dbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97"),
    // Hardhat/Anvil account 9
    hex32("2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6"),
    // Hardhat/Anvil account 10
    hex32("f214f2b2cd398c806f84e317254e0f0b801d0643303237d97a22a48e01628897"),
    // Hardhat/Anvil account 11
    hex32("701b615bbdfb9de65240bc28bd21bbc0d996645a3dd57e7b12bc2bdf6f192c82"),
    // Hardhat/Anvil account 12
    hex32("a267530f49f8280200edf313ee7af6b827f2a8bce2897751d06a843f644967b1"),
    // Hardhat/Anvil account 13
    hex32("47c99abed3324a2707c28affff1267e45918ec8c3f20b8aa892e8b065d2942dd"),
    // Hardhat/Anvil account 14
    hex32("c526ee95bf44d8fc405a158bb884d9d1238d99f0612e9f33d006bb0789009aaa"),
    // Hardhat/Anvil account 15
    hex32("8166f546bab6da521a8369cab06c5d2b9e46670292d85c875ee9ec20e84ffb61"),
    // Hardhat/Anvil account 16
    hex32("ea6c44ac03bff858b476bba40716402b03e41b8e97e276d1baec7c37d42484a0"),
    // Hardhat/Anvil account 17
    hex32("689af8efa8c651a91ad287602527f3af2fe9f6501a7ac4b061667b5a93e037fd"),
    // Hardhat/Anvil account 18
    hex32("de9be858da4a475276426320d5e9262ecfc3ba460bfac56360bfa6c4c28b4ee0"),
    // Hardhat/Anvil account 19
    hex32("df57089febbacf7ba0bc227dafbffa9fc08a93fdc68e1e42411a14efcf23656e"),
    // BIP-32 test vector 1, depth 0
    hex32("e8f32e723decf4051aefac8e2c93c9c5b214313817cdb01a1494b917c8436b35"),
    // BIP-32 test vector 1, depth 1
    hex32("edb2e14f9ee77d26dd93b4ecede8d16ed408ce149b6cd80b0715a2d911a0afea"),
    // BIP-32 test vector 1, depth 2
    hex32("3c6cb8d0f6a264c91ea8b5030fadaa8e538b020f0a387421a12de9319dc93368"),
    // BIP-32 test vector 1, depth 3
    hex32("cbce0d719ecf7431d88e6a89fa1483e02e35092af60c042b1df2ff59fa424dca"),
    // BIP-32 test vector 1, depth 4
    hex32("0f479245fb19a38a1954c5c7c0ebab2f9bdfd96a17563ef28a6a4b1a2a764ef4"),
    // BIP-32 test vector 1, depth 5
    hex32("471b76e389e528d6de6d816857e012c5455051cad6660850e58372a6c3e6e7c8"),
    // BIP-32 test vector 2, depth 0
    hex32("4b03d6fc340455b363f51020ad3ecca4f0850280cf436c70c727923f6db46c3e"),
    // BIP-32 test vector 2, depth 1
    hex32("abe74a98f6c7eabee0428f53798f0ab8aa1bd37873999041703c742f15ac7e1e"),
    // BIP-32 test vector 2, depth 2
    hex32("877c779ad9687164e9c2f4f0f4ff0340814392330693ce95a58fe18fd52e6e93"),
    // BIP-32 test vector 2, depth 3
    hex32("704addf544a06e5ee4bea37098463c23613da32020d604506da8c0518e1da4b7"),
    // BIP-32 test vector 2, depth 4
    hex32("f1c7c871a54a804afe328b4c83a1c33b8e5ff48f5087273f04efa83b247d6a2d"),
    // BIP-32 test vector 2, depth 5
    hex32("bb7d39bdb83ecf58f2fd82b6d918341cbef428661ef01ab97c28a4842125ac23"),
    // Bitcoin wiki WIF example
    hex32("0c28fca386c7a227600b2fe50b7cae11ec86d3bf1fbe471be89827e19d72aa1d"),
];

/// Example segwit addresses of BIP-173 and BIP-350 (their test vectors) and of the Bitcoin
/// wiki, in lower case (segwit addresses are compared without case).
const TEST_SEGWIT_ADDRESSES: &[&str] = &[
    "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
    "bc1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3qccfmv3",
    "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
    "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
];

/// Example legacy addresses of the Bitcoin wiki (base58: compared exactly).
const TEST_LEGACY_ADDRESSES: &[&str] = &[
    "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
    "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",
];

/// A published example address.
pub(crate) fn is_test_address(address: &[u8]) -> bool {
    TEST_SEGWIT_ADDRESSES
        .iter()
        .any(|a| a.as_bytes().eq_ignore_ascii_case(address))
        || TEST_LEGACY_ADDRESSES
            .iter()
            .any(|a| a.as_bytes() == address)
}

pub(crate) fn is_test_key(key: &[u8]) -> bool {
    TEST_KEYS.iter().any(|k| k.as_slice() == key) || degenerate_key(key)
}

/// A key of at most two distinct byte values (`00…01`, `11…11`): written by hand.
fn degenerate_key(key: &[u8]) -> bool {
    let first = key[0];
    let other = key.iter().find(|&&b| b != first);
    match other {
        None => true,
        Some(&o) => key.iter().all(|&b| b == first || b == o),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::card::{luhn, network};

    #[test]
    fn test_cards_are_real_card_shapes() {
        for c in TEST_CARDS {
            let d = c.as_bytes();
            assert!(luhn(d), "{c} fails Luhn");
            assert!(network(d).is_some(), "{c} has no network");
        }
    }

    #[test]
    fn hardhat_account_0_is_listed() {
        assert!(is_test_key(&hex32(
            "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
        )));
        assert!(is_test_key(&[0u8; 32]));
        let mut one = [0u8; 32];
        one[31] = 1;
        assert!(is_test_key(&one));
    }
}
