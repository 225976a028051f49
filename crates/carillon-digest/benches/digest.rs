//! Cost of authenticating one REGISTER: parse the Authorization value and
//! verify it (fresh nonce, nc=1, qop=auth), for MD5 and SHA-256, against a
//! clear password and against a cached HA1.

use std::hint::black_box;

use carillon_digest::{
    ha1, respond, Algorithm, AuthResult, Credentials, DigestConfig, DigestServer, Secret,
};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};

const REALM: &str = "carillon.example";
const USER: &str = "agent1001";
const PASSWORD: &str = "s3cret-pass";

fn server(alg: Algorithm) -> DigestServer {
    DigestServer::new(DigestConfig {
        realm: REALM.into(),
        lifetime_secs: 300,
        algorithms: vec![alg],
        key: [0x5a; 32],
        require_qop: true,
        counter_capacity: 1 << 16,
    })
    .expect("valid config")
}

fn bench_verify(c: &mut Criterion) {
    for alg in [Algorithm::Md5, Algorithm::Sha256] {
        for cached in [false, true] {
            let issuer = server(alg);
            let mut verifier = server(alg);
            let cached_ha1 = ha1(alg, USER, REALM, PASSWORD);
            let mut tick = 1_700_000_000u64;
            // One authenticated REGISTER per simulated second keeps the
            // nonce counter at its steady-state size.
            let mut next = move || {
                tick += 1;
                let challenge = issuer
                    .challenges(tick, tick.wrapping_mul(0x9e37_79b9_7f4a_7c15), false)
                    .remove(0);
                let header = respond(
                    &challenge,
                    "REGISTER",
                    "sip:carillon.example",
                    USER,
                    PASSWORD,
                    "0a4f113b",
                    1,
                );
                (tick, header)
            };

            let (now, header) = next();
            let creds = Credentials::parse(&header).expect("parses");
            assert_eq!(
                verifier.verify(now, "REGISTER", &creds, Secret::Password(PASSWORD)),
                AuthResult::Ok
            );

            let secret_name = if cached { "ha1" } else { "password" };
            c.bench_function(&format!("parse+verify {alg} {secret_name}"), |b| {
                b.iter_batched(
                    &mut next,
                    |(now, header)| {
                        let creds = Credentials::parse(black_box(&header)).expect("parses");
                        let secret = if cached {
                            Secret::Ha1(&cached_ha1)
                        } else {
                            Secret::Password(PASSWORD)
                        };
                        black_box(verifier.verify(now, "REGISTER", &creds, secret))
                    },
                    BatchSize::SmallInput,
                )
            });
        }
    }
}

/// The pieces on their own: parsing, and verification of already-parsed
/// credentials (every call after the first is a replay, which does the same
/// hashing as a success).
fn bench_pieces(c: &mut Criterion) {
    for alg in [Algorithm::Md5, Algorithm::Sha256] {
        let mut verifier = server(alg);
        let challenge = verifier.challenges(100, 1, false).remove(0);
        let header = respond(
            &challenge,
            "REGISTER",
            "sip:carillon.example",
            USER,
            PASSWORD,
            "0a4f113b",
            1,
        );
        c.bench_function(&format!("parse {alg}"), |b| {
            b.iter(|| Credentials::parse(black_box(&header)))
        });
        let creds = Credentials::parse(&header).expect("parses");
        c.bench_function(&format!("verify {alg} password"), |b| {
            b.iter(|| {
                verifier.verify(
                    100,
                    "REGISTER",
                    black_box(&creds),
                    Secret::Password(PASSWORD),
                )
            })
        });
    }
}

criterion_group!(benches, bench_verify, bench_pieces);
criterion_main!(benches);
