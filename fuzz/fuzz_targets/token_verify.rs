//! Login token verification (`rtmd`'s `Tokens`), what an app reaches with its first quest on
//! the gate, before it is logged in.
//!
//! The first byte picks what the rest is:
//! * even: a token text (the rest, as lossy UTF-8) verified for fixed owners at a fixed time.
//!   It must not panic, and it must not verify: nobody can mint without the key.
//! * odd: claims (pid, uid, generation, issue time, lifetime and a check time, from the next
//!   bytes). A token minted with them verifies for its owner while it lives and not after,
//!   never for another pid or uid, and no longer once any one character is changed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtmd::store::TokenKey;
use rtmd::testing::{TokenError, Tokens};
use std::sync::OnceLock;

fn tokens() -> &'static Tokens {
    static TOKENS: OnceLock<Tokens> = OnceLock::new();
    TOKENS.get_or_init(|| {
        Tokens::new(vec![
            TokenKey {
                id: 1,
                secret: [7; 32],
            },
            TokenKey {
                id: 2,
                secret: [9; 32],
            },
        ])
        .expect("a ring of two keys")
    })
}

/// Takes `N` bytes from the front of `data` (zeros past its end).
fn take<const N: usize>(data: &mut &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let n = N.min(data.len());
    out[..n].copy_from_slice(&data[..n]);
    *data = &data[n..];
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let t = tokens();
    if mode % 2 == 0 {
        let text = String::from_utf8_lossy(rest);
        for (pid, uid) in [(11000001, 42), (0, 0), (-1, i64::MIN)] {
            assert!(t.verify(&text, pid, uid, 1_700_000_000).is_err(), "{text:?}");
        }
        return;
    }
    let pid = i32::from_le_bytes(take(&mut rest));
    let uid = i64::from_le_bytes(take(&mut rest));
    let generation = u64::from_le_bytes(take(&mut rest));
    let issued = u64::from(u32::from_le_bytes(take(&mut rest)));
    let ttl = u64::from(u32::from_le_bytes(take(&mut rest)));
    let at = issued + u64::from(u32::from_le_bytes(take(&mut rest)));
    let token = t.mint(pid, uid, generation, issued, ttl);
    match t.verify(&token, pid, uid, at) {
        Ok(claims) => {
            assert!(at < issued + ttl);
            assert_eq!(
                (claims.pid, claims.uid, claims.generation, claims.issued),
                (pid, uid, generation, issued)
            );
            assert!(claims.check_generation(generation).is_ok());
            assert_eq!(
                claims.check_generation(generation.wrapping_add(1)),
                Err(TokenError::Revoked)
            );
        }
        Err(e) => assert!(e == TokenError::Expired && at >= issued + ttl, "{e}"),
    }
    assert!(t.verify(&token, pid.wrapping_add(1), uid, issued).is_err());
    assert!(t.verify(&token, pid, uid.wrapping_add(1), issued).is_err());
    let i = usize::from(take::<1>(&mut rest)[0]) % token.len();
    let mut changed = token.into_bytes();
    changed[i] = if changed[i] == b'A' { b'B' } else { b'A' };
    let changed = String::from_utf8(changed).expect("base64 is ASCII");
    assert!(t.verify(&changed, pid, uid, issued).is_err());
});
