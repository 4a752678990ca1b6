#!/usr/bin/env bash
# The example admin user's password for `make run`: made once at random and kept in
# ${SB_DATA_DIR:-.data}/admin-password (readable by you only). Prints its bcrypt hash, which the example
# configuration (Config/admin.yaml) takes from SB_ADMIN_PASSWORD_HASH. Usage: admin.sh BINARY
set -euo pipefail
bin=${1:?usage: admin.sh path/to/switchboard}
data=${SB_DATA_DIR:-.data}
umask 077
mkdir -p "$data"
if [ ! -s "$data/admin-password" ]; then
  head -c 18 /dev/urandom | base64 | tr -d '/+=\n' > "$data/admin-password"
fi
if [ ! -s "$data/admin-password.bcrypt" ] || [ "$data/admin-password" -nt "$data/admin-password.bcrypt" ]; then
  "$bin" admin hash-password < "$data/admin-password" > "$data/admin-password.bcrypt"
fi
cat "$data/admin-password.bcrypt"
