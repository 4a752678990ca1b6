#!/usr/bin/env bash
# Least-privilege broker users for Switchboard (docs/operations.md, "Broker users").
#
#   users.sh esb VHOST USER ENDPOINT...   an ESB's user: publishes to sb.in, consumes sb.out.<ENDPOINT> of
#                                         its own endpoints, nothing else (no configure, no internal queue,
#                                         no default exchange: it cannot put a message straight into a queue)
#   users.sh switchboard VHOST USER       Switchboard's own user: declares and uses sb.* only
#   users.sh ingress VHOST USER           the webhook ingress's user (ingress.broker_url): publishes to sb.in,
#                                         nothing else (no read, no configure); name it in the endpoints'
#                                         `users` where those are restricted
#
# The password is read from the environment variable SB_USER_PASSWORD (never an argument: arguments
# show in `ps`). An existing user keeps its password when SB_USER_PASSWORD is empty.
# RABBITMQCTL names the rabbitmqctl to run (default: rabbitmqctl; for the local broker of this checkout:
# RABBITMQCTL="bash Deploy/local/rabbitmq.sh ctl").
#
# Name the ESB's user in its endpoint too (`users: [USER]`): RabbitMQ checks the user_id property
# against the connection's user, so intake then knows which ESB really sent a message.
set -euo pipefail

ctl() { ${RABBITMQCTL:-rabbitmqctl} "$@"; }

# A name for use inside a regular expression: dots and other specials escaped.
quote() { printf '%s' "$1" | sed -e 's/[][\.*^$+?(){}|/]/\\&/g'; }

ensure_user() {
  local user=$1
  if ctl list_users --silent | awk '{print $1}' | grep -qxF "$user"; then
    if [ -n "${SB_USER_PASSWORD:-}" ]; then ctl change_password "$user" "$SB_USER_PASSWORD" >/dev/null; fi
  else
    if [ -z "${SB_USER_PASSWORD:-}" ]; then
      echo "users.sh: set SB_USER_PASSWORD to create user '$user'" >&2
      exit 2
    fi
    ctl add_user "$user" "$SB_USER_PASSWORD" >/dev/null
  fi
}

case "${1:-}" in
  esb)
    [ $# -ge 4 ] || { echo "usage: $0 esb VHOST USER ENDPOINT..." >&2; exit 2; }
    vhost=$2 user=$3; shift 3
    reads=()
    for endpoint in "$@"; do reads+=("$(quote "sb.out.$endpoint")"); done
    read_re="^($(IFS='|'; echo "${reads[*]}"))\$"
    ensure_user "$user"
    # configure: nothing; write: the exchange sb.in only; read: its own outbound queues only.
    ctl set_permissions -p "$vhost" "$user" '^$' '^sb\.in$' "$read_re" >/dev/null
    echo "users.sh: '$user' on vhost '$vhost' may publish to sb.in and consume ${*/#/sb.out.}"
    ;;
  ingress)
    [ $# -eq 3 ] || { echo "usage: $0 ingress VHOST USER" >&2; exit 2; }
    vhost=$2 user=$3
    ensure_user "$user"
    # configure: nothing; write: the exchange sb.in only; read: nothing (its confirms need no permission).
    ctl set_permissions -p "$vhost" "$user" '^$' '^sb\.in$' '^$' >/dev/null
    echo "users.sh: '$user' on vhost '$vhost' may publish to sb.in only"
    ;;
  switchboard)
    [ $# -eq 3 ] || { echo "usage: $0 switchboard VHOST USER" >&2; exit 2; }
    vhost=$2 user=$3
    ensure_user "$user"
    # Its own names, the default exchange (parking, replay, store replies) and direct reply-to.
    ctl set_permissions -p "$vhost" "$user" '^sb\.' '^(sb\..*|amq\.default)$' '^(sb\..*|amq\.rabbitmq\.reply-to)$' >/dev/null
    echo "users.sh: '$user' on vhost '$vhost' may declare, publish to and consume sb.* only"
    ;;
  *)
    echo "usage: $0 esb VHOST USER ENDPOINT... | ingress VHOST USER | switchboard VHOST USER" >&2
    exit 2
    ;;
esac
