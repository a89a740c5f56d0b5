// Every parser on random and mutated input: no panic, and invariants hold. A fast, always-on
// complement to the coverage-guided `cargo fuzz` targets in `memguard/fuzz/`.

use super::{meminfo, memory_stat, mountinfo, oom_score_adj, proc_cgroup, quantity, setting, value};

/// Small deterministic xorshift generator (no dependency, reproducible failures).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n as u64)).unwrap_or(0)
    }
}

const SEEDS: &[&str] = &[
    "12:memory:/kubepods/pod1/c1\n1:name=systemd:/\n0::/\n",
    "0::/kubepods.slice/kubepods-pod.slice/cri-containerd:ab:cd.scope\n",
    "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:9 master:3 - cgroup cgroup rw,memory\n",
    "29 23 0:26 /docker/a\\040b /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n",
    "cache 1\ntotal_inactive_file 2\nhierarchical_memory_limit 9223372036854771712\n",
    "MemTotal: 1024 kB\nMemAvailable: 512 kB\n",
    "max\n",
    "9223372036854771712\n",
    "-997\n",
    "1.5Gi",
    "128974848000m",
    "129e6",
    "1.5s",
    "250ms",
];

/// How many inputs each test tries: fewer under Miri, which interprets every step (the
/// full count runs natively in `cargo test`).
const ROUNDS: usize = if cfg!(miri) { 200 } else { 20_000 };

const ALPHABET: &[u8] = b"0123456789:/-\\ \n,=abcmx\t.\xffeEGiMks+";

fn mutate(rng: &mut Rng, seed: &str) -> String {
    let mut bytes = seed.as_bytes().to_vec();
    for _ in 0..=rng.below(8) {
        match rng.below(4) {
            0 if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes.remove(i);
            }
            1 => {
                let i = rng.below(bytes.len() + 1);
                bytes.insert(i, ALPHABET[rng.below(ALPHABET.len())]);
            }
            2 if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes[i] = ALPHABET[rng.below(ALPHABET.len())];
            }
            _ => {
                let other = SEEDS[rng.below(SEEDS.len())].as_bytes();
                let cut = rng.below(other.len() + 1);
                bytes.extend_from_slice(&other[..cut]);
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn parsers_never_panic_on_mutated_input() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for i in 0..ROUNDS {
        let text = mutate(&mut rng, SEEDS[i % SEEDS.len()]);
        let pc = proc_cgroup::parse(&text);
        assert!(pc.entries.iter().all(|e| e.path.starts_with('/')), "{text:?}");
        let nonblank = text.lines().filter(|l| !l.trim().is_empty()).count();
        assert_eq!(pc.entries.len() + pc.rejected.len(), nonblank, "{text:?}");
        let mi = mountinfo::parse(&text);
        assert_eq!(mi.mounts.len() + mi.rejected.len(), nonblank, "{text:?}");
        let _ = mountinfo::unescape(&text);
        if let Ok(value::LimitValue::Bytes(b)) = value::parse_limit(&text) {
            assert!(b < value::V1_UNLIMITED_THRESHOLD);
        }
        let _ = value::parse_u64(&text);
        let r = memory_stat::ReclaimStat::scan(&text);
        let _ = (r.unreclaimable(u64::MAX), r.working_set(0), r.clean_file_cache());
        let _ = meminfo::parse(&text);
        if let Ok(v) = oom_score_adj::parse(&text) {
            assert!((-1000..=1000).contains(&v));
        }
        let _ = quantity::parse_bytes(&text);
        let _ = setting::parse_duration(&text);
        let _ = setting::parse_bool(&text);
        let _ = setting::parse_fraction(&text);
        let _ = setting::parse_count(&text);
    }
}

#[test]
fn unescape_round_trips_kernel_escaping() {
    let mut rng = Rng(42);
    for _ in 0..ROUNDS / 4 {
        let len = rng.below(24);
        let original: String = (0..len).map(|_| char::from(b" \t\n\\a/-"[rng.below(7)])).collect();
        let escaped: String = original
            .chars()
            .map(|c| match c {
                ' ' | '\t' | '\n' | '\\' => format!("\\{:03o}", c as u32),
                c => c.to_string(),
            })
            .collect();
        assert_eq!(mountinfo::unescape(&escaped), original);
    }
}
