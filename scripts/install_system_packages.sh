#!/usr/bin/env bash
# `install_system_packages.sh [PACKAGE...]`: installs the Debian packages named that are missing, with apt-get as
# root or through passwordless sudo. Without arguments: what the tests need beyond Python, i.e. JDK 17, Maven
# and the plugin and JUnit packages that let Maven build android_demo's Java modules offline (its
# maven-settings.xml reads Debian's /usr/share/maven-repo), gcc for the JNI shim and checkstyle for `make lint`;
# `make install` runs it so, and `make test` works on a fresh machine. tools/bazel/setup.sh names bazel-bootstrap.
set -euo pipefail

packages=("$@")
if [[ ${#packages[@]} -eq 0 ]]; then
  packages=(openjdk-17-jdk-headless maven junit5 libmaven-compiler-plugin-java libmaven-resources-plugin-java
            libsurefire-java libmaven-jar-plugin-java gcc checkstyle)
fi
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "installing Debian packages: ${missing[*]}" >&2
if [[ "$(id -u)" -eq 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo -n)  # -n: fail instead of waiting for a password
else
  echo "error: these Debian packages are missing and installing them needs root: ${missing[*]}" >&2
  exit 1
fi
"${as_root[@]}" apt-get update -q
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
