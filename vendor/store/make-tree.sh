#!/bin/sh
# Builds one of the fixed test trees whose NARs vendor/regen.sh captured with real Nix.
# Usage: make-tree.sh TREE DEST   (DEST must not exist)
# The tests run this same script and compare ferry's encoding with the captured bytes, so a
# change here needs a vendor/regen.sh run.
set -eu
tree=$1 dest=$2
umask 022
case $tree in
file)    printf 'hello\n' > "$dest" ;;
empty)   : > "$dest" ;;
exec)    printf '#!/bin/sh\necho hi\n' > "$dest"; chmod 755 "$dest" ;;
link)    ln -s 'target/of/the link' "$dest" ;;
emptydir) mkdir "$dest" ;;
dir)
    mkdir "$dest"
    # Sizes around the 8-byte padding boundary.
    : > "$dest/size0"
    printf 'a' > "$dest/size1"
    printf 'abcdefg' > "$dest/size7"
    printf 'abcdefgh' > "$dest/size8"
    printf 'abcdefghi' > "$dest/size9"
    seq 1 30000 > "$dest/big"
    printf '#!/bin/sh\nexit 0\n' > "$dest/run"; chmod 755 "$dest/run"
    # Only the owner-execute bit is recorded.
    printf 'x' > "$dest/group-exec-only"; chmod 654 "$dest/group-exec-only"
    printf 'x' > "$dest/owner-exec-only"; chmod 744 "$dest/owner-exec-only"
    # Names whose bytewise order differs from locale or case-insensitive order.
    for n in B a a.b a-b a0 _ '~' 'space name' "$(printf '\303\244')" Z; do printf '%s' "$n" > "$dest/$n"; done
    ln -s size1 "$dest/rel-link"
    ln -s /nix/store/does-not-exist "$dest/abs-dangling-link"
    mkdir "$dest/empty-subdir"
    mkdir -p "$dest/nested/deeper/deepest"
    printf 'bottom\n' > "$dest/nested/deeper/deepest/file"
    ln -s ../.. "$dest/nested/deeper/up"
    printf 'mid' > "$dest/nested/mid"
    ;;
*) echo "unknown tree $tree" >&2; exit 2 ;;
esac
