#!/bin/sh
# make install / uninstall with DESTDIR and PREFIX: tools, libqforge.a,
# public headers (no *_impl.h), qforge.pc; a program builds against the
# installed copy through pkg-config; uninstall removes everything.
. "$(dirname "$0")/lib.sh"
[ "$QF_BUILD" = "build" ] || { ok "install test runs with the default build only (skipped for $QF_BUILD)"; exit 0; }
D="$TMP/dest"
(cd "$QF_ROOT" && make -s install DESTDIR="$D" PREFIX=/opt/qf) >"$TMP/log" 2>&1
[ -x "$D/opt/qf/bin/qforge" ] && [ -x "$D/opt/qf/bin/qforge-convert" ] && ok "tools installed" || notok "tools installed" "$(tail -3 "$TMP/log")"
[ -f "$D/opt/qf/lib/libqforge.a" ] && ok "library installed" || notok "library installed" "missing"
[ -f "$D/opt/qf/include/qforge/formats/gguf.h" ] && ok "headers installed" || notok "headers installed" "missing"
find "$D" -name '*_impl.h' | grep -q . && notok "internal headers not installed" "found" || ok "internal headers not installed"
grep -q '^prefix=/opt/qf$' "$D/opt/qf/lib/pkgconfig/qforge.pc" && ok "qforge.pc has the prefix" || notok "qforge.pc" "$(cat "$D/opt/qf/lib/pkgconfig/qforge.pc")"
cat > "$TMP/use.c" <<'C'
#include <stdio.h>
#include "formats/gguf.h"
int main(int argc, char **argv)
{
    qf_gguf *g;
    qf_err e = { 0 };
    if (argc < 2 || qf_gguf_open(argv[1], &g, &e) != 0)
        return 1;
    printf("%lld\n", (long long)qf_gguf_tensor_count(g));
    qf_gguf_close(g);
    return 0;
}
C
flags=$(PKG_CONFIG_SYSROOT_DIR="$D" PKG_CONFIG_PATH="$D/opt/qf/lib/pkgconfig" pkg-config --cflags --libs qforge)
if cc "$TMP/use.c" $flags -o "$TMP/use" 2>"$TMP/cc" && [ "$("$TMP/use" "$FIX/gguf/stories260K-f16.gguf")" = 47 ]; then
    ok "a program links against the installed library via pkg-config"
else
    notok "link against installed library" "$(head -3 "$TMP/cc")"
fi
(cd "$QF_ROOT" && make -s uninstall DESTDIR="$D" PREFIX=/opt/qf) >/dev/null 2>&1
n=$(find "$D" -type f | wc -l)
[ "$n" -eq 0 ] && ok "uninstall removes every file" || notok "uninstall" "$n files left"
