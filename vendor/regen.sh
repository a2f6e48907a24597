#!/usr/bin/env bash
# Regenerates the store-format test vectors in vendor/store/ with the real Nix in PATH.
#
# Captured with Debian's nix-bin 2.8.0. Run as root (nix-store --add needs a writable store or a
# nix-daemon); no network is needed. Usage, from the repository root:  vendor/regen.sh
# Then run `cargo test --test store_vectors` and commit vendor/store/.
#
# Outputs:
#   store/hashes.tsv        input  algo  base16  nix32  sri        (nix-hash --flat, nix hash file --sri)
#   store/nar/TREE.nar      nix-store --dump of the tree make-tree.sh builds
#   store/nars.tsv          tree  narSize  narHash(nix32)  nix-store --add path
#   store/fixed-paths.tsv   method  algo  base16  name  path     (nix-store --print-fixed-path)
#   store/text-paths.json   [{name, contents, refs, path}]       (builtins.toFile)
#   store/keys/             a key pair from nix-store --generate-binary-cache-key and a
#                           signature made by `nix store sign` with it
set -euo pipefail
cd "$(dirname "$0")/store"
NIX_OPTS=(--option substituters '')
NIXC=(nix --extra-experimental-features nix-command)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

nix-store --version > nix-version.txt

# Hashes of known strings in every form.
inputs=(empty abc hello fox long)
mkinput() {
    case $1 in
    empty) : ;;
    abc) printf 'abc' ;;
    hello) printf 'hello\n' ;;
    fox) printf 'The quick brown fox jumps over the lazy dog' ;;
    long) seq 1 1000 ;;
    esac
}
: > hashes.tsv
for i in "${inputs[@]}"; do
    mkinput "$i" > "$tmp/$i"
    for algo in md5 sha1 sha256 sha512; do
        printf '%s\t%s\t%s\t%s\t%s\n' "$i" "$algo" \
            "$(nix-hash --flat --type "$algo" "$tmp/$i")" \
            "$(nix-hash --flat --base32 --type "$algo" "$tmp/$i")" \
            "$("${NIXC[@]}" hash file --sri --type "$algo" "$tmp/$i")" >> hashes.tsv
    done
done

# NARs of trees with every node type, their hashes and their nix-store --add paths.
rm -rf nar && mkdir nar
: > nars.tsv
for t in file empty exec link emptydir dir; do
    sh ./make-tree.sh "$t" "$tmp/$t"
    nix-store --dump "$tmp/$t" > "nar/$t.nar"
    printf '%s\t%s\t%s\t%s\n' "$t" "$(stat -c %s "nar/$t.nar")" \
        "$(nix-hash --type sha256 --base32 "$tmp/$t")" \
        "$(nix-store "${NIX_OPTS[@]}" --add "$tmp/$t")" >> nars.tsv
done

# Fixed-output paths, flat and recursive, for each algorithm.
: > fixed-paths.tsv
for algo in md5 sha1 sha256 sha512; do
    h=$(nix-hash --flat --type "$algo" "$tmp/hello")
    printf 'flat\t%s\t%s\t%s\t%s\n' "$algo" "$h" hello.txt \
        "$(nix-store --print-fixed-path "$algo" "$h" hello.txt)" >> fixed-paths.tsv
    h=$(nix-hash --type "$algo" "$tmp/dir")
    printf 'recursive\t%s\t%s\t%s\t%s\n' "$algo" "$h" source \
        "$(nix-store --print-fixed-path --recursive "$algo" "$h" source)" >> fixed-paths.tsv
done

# Text paths as builtins.toFile makes them, with and without references.
nix-instantiate "${NIX_OPTS[@]}" --eval --strict --json --readonly-mode -E '
  let
    t = name: s: {
      inherit name;
      contents = builtins.unsafeDiscardStringContext s;
      refs = builtins.attrNames (builtins.getContext s);
      path = builtins.toFile name s;
    };
    a = builtins.toFile "a.txt" "x";
    b = builtins.toFile "b.txt" "y";
  in [
    (t "hello.txt" "hello\n")
    (t "empty" "")
    (t "a.txt" "x")
    (t "with-ref.sh" "cat ${a}\n")
    (t "with-two-refs" "${b} ${a}")
  ]' > text-paths.json

# Keys and a signature by real Nix over an input-addressed path, as a narinfo.
rm -rf keys && mkdir keys
nix-store --generate-binary-cache-key nix-test-1 keys/secret keys/public
drv=$(nix-instantiate "${NIX_OPTS[@]}" -E 'derivation { name = "ferry-vector"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo vector > $out" ]; }')
out=$(nix-store "${NIX_OPTS[@]}" --realise "$drv")
"${NIXC[@]}" copy "${NIX_OPTS[@]}" --to "file://$tmp/cache" "$out"
"${NIXC[@]}" store sign --store "file://$tmp/cache" -k keys/secret "$out"
cp "$tmp/cache/$(basename "$out" | cut -c1-32).narinfo" keys/signed.narinfo
echo "regenerated vendor/store with $(cat nix-version.txt)"
