#!/bin/sh
# build.sh - configure and build mailonce in build/ (out of the source tree).
#
# Extra arguments go to configure, e.g. tests/build.sh --enable-asan.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
if [ ! -x configure ] || [ configure.ac -nt configure ]; then
	./autogen.sh
fi
mkdir -p build
cd build
if [ ! -f Makefile ] || [ "$#" -gt 0 ]; then
	../configure --quiet "$@"
fi
make -j"$(nproc)" >/dev/null
echo "build.sh: built in $top/build"
