//! `include/memguard.h` is what the pinned cbindgen (see Cargo.toml) generates from this crate
//! and `cbindgen.toml`. Regenerate with `MEMGUARD_BLESS=1 cargo test -p memguard-ffi --test header`.

use std::path::PathBuf;

#[test]
fn committed_header_matches_cbindgen() {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut generated);
    let generated = String::from_utf8(generated).expect("utf-8 header");
    let path = crate_dir.join("include/memguard.h");
    if std::env::var_os("MEMGUARD_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write include/memguard.h");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let first = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
        panic!(
            "include/memguard.h is not what cbindgen generates (first difference at line {}): \
             run `MEMGUARD_BLESS=1 cargo test -p memguard-ffi --test header` and commit the result",
            first + 1
        );
    }
}
