#!/usr/bin/env bash
# Applies what Switchboard needs to a RabbitMQ broker (idempotent: run it again after a change):
#   apply.sh VHOST
# - the vhost;
# - Switchboard's own user (SB_SWITCHBOARD_USER, default switchboard; password SB_SWITCHBOARD_PASSWORD):
#   configure/write/read on sb.* only (Deploy/rabbitmq/users.sh switchboard);
# - a monitoring user (SB_MONITORING_USER, default sb-monitoring; password SB_MONITORING_PASSWORD) with the
#   `monitoring` tag, access to the vhost and to none of its exchanges or queues: it reads the management
#   API (queue depths for KEDA, oldest-message ages for Switchboard's metrics) and nothing else;
# - the policies below. ESB users come from users.sh esb VHOST USER ENDPOINT...
# Passwords come from the environment (never arguments: they show in `ps`); an existing user keeps its
# password when its variable is empty. RABBITMQCTL names the rabbitmqctl to run (default rabbitmqctl).
#
# Queues carry their type from the moment they are declared, so the data queues are quorum queues when
# Switchboard declares them with settings.queue_type: quorum (SB_QUEUE_TYPE=quorum). A policy cannot turn
# an existing classic queue into a quorum queue: start a new vhost, or drain and delete the old queues.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ctl() { ${RABBITMQCTL:-rabbitmqctl} "$@"; }

[ $# -eq 1 ] || { echo "usage: $0 VHOST" >&2; exit 2; }
vhost=$1

if ! ctl list_vhosts --silent | grep -qxF "$vhost"; then
  ctl add_vhost "$vhost" >/dev/null
  echo "apply.sh: vhost '$vhost' created"
fi

SB_USER_PASSWORD="${SB_SWITCHBOARD_PASSWORD:-}" bash "$here/users.sh" switchboard "$vhost" "${SB_SWITCHBOARD_USER:-switchboard}"

monitor=${SB_MONITORING_USER:-sb-monitoring}
if ctl list_users --silent | awk '{print $1}' | grep -qxF "$monitor"; then
  if [ -n "${SB_MONITORING_PASSWORD:-}" ]; then ctl change_password "$monitor" "$SB_MONITORING_PASSWORD" >/dev/null; fi
else
  [ -n "${SB_MONITORING_PASSWORD:-}" ] || { echo "apply.sh: set SB_MONITORING_PASSWORD to create user '$monitor'" >&2; exit 2; }
  ctl add_user "$monitor" "$SB_MONITORING_PASSWORD" >/dev/null
fi
ctl set_user_tags "$monitor" monitoring >/dev/null
# Access to the vhost (the management API lists only vhosts a user may access) and to none of its
# exchanges or queues: it can connect, and neither publish, consume nor declare anything.
ctl set_permissions -p "$vhost" "$monitor" '^$' '^$' '^$' >/dev/null
echo "apply.sh: '$monitor' may read the management API (tag monitoring); no exchange or queue of '$vhost'"

# Inbound, outbound and work queues (quorum queues when declared so): a message redelivered 100 times
# (a worker crashing on it again and again) is dead-lettered to sb.parked instead of blocking its
# partition; at-least-once dead-lettering (which needs reject-publish overflow) loses nothing on the way.
# An outage does not redeliver: Switchboard holds its batch and tries again in place (a lost connection
# or rabbitmq.conf's consumer_timeout returns it once); what crosses the limit is parked, not lost
# (docs/operations.md, "Recover"). Switchboard declares the same as queue arguments in quorum mode
# (settings.delivery_limit), so this policy is a second statement of it (the lower limit applies) and
# what covers classic queues' dead-lettering. sb.parked has no limit: the store role drains it at once
# into its parked table, and nothing else consumes it.
ctl set_policy -p "$vhost" --apply-to queues --priority 10 sb-data '^sb\.(in|out|work)\.' \
  '{"delivery-limit": 100, "dead-letter-exchange": "", "dead-letter-routing-key": "sb.parked", "dead-letter-strategy": "at-least-once", "overflow": "reject-publish"}' >/dev/null
echo "apply.sh: policy sb-data on sb.in.*, sb.out.*, sb.work.*: delivery-limit 100, at-least-once dead-lettering to sb.parked"
