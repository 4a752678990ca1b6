"""`make demo`: both stories, played by a scripted ESB against the real switchboard and broker.

1. Hand it back where it came from: a ticket starts at A's local desk, goes to SAP Support (created at
   vendor X), and the vendor hands it back: A's ticket returns to the remembered group.
2. The locked ticket: X's ESB says "locked" for the first updates, Switchboard retries after
   LOCK_RETRY_DELAY (1 s here), then X accepts; a second update stays locked past LOCK_RETRY_MAX (3 here)
   and Switchboard tells A.
Prints each conversation's timeline at the end.
"""
import json
import sys
import time
import uuid

from conftest import ESB, Switchboard, incident, jira, mgmt


def say(text):
    print(f"demo: {text}", flush=True)


def main():
    vhost = "sb-demo-" + uuid.uuid4().hex[:6]
    mgmt("PUT", f"/api/vhosts/{vhost}", {})
    mgmt("PUT", f"/api/permissions/{vhost}/guest", {"configure": ".*", "write": ".*", "read": ".*"})
    sb = Switchboard(vhost, env={"LOCK_RETRY_DELAY": "1s", "LOCK_RETRY_MAX": "3"})
    try:
        sb.start()
        esb = ESB(vhost)
        number, key = "INC" + str(uuid.uuid4().int % 10**7).zfill(7), "VX-" + str(uuid.uuid4().int % 10**4)
        local = {"value": "6816f79cc0a8016401c5a33be04be441", "display_value": "Local Service Desk"}

        say(f"A opens {number} at its Local Service Desk")
        esb.publish("customer-a", incident(number, assignment_group=local, sys_updated_by="alice"), message_id="demo-1")
        time.sleep(0.5)
        say(f"A reassigns {number} to SAP Support")
        esb.publish("customer-a", incident(number, sys_updated_by="alice"), message_id="demo-2")
        [(create, body)] = esb.take("sb.out.vendor-x", 1)
        say(f"X's ESB receives a {create.type}: {body.decode()}")
        esb.publish("vendor-x", {"status": "ok", "key": key}, type="ack", correlation_id=create.message_id, message_id="demo-3")
        say(f"X's ESB acks it: created {key}")

        say("A updates the ticket; X's technician has it open, so X's ESB answers 'locked' twice")
        esb.publish("customer-a", incident(number, priority="1", short_description="SAP down for all plants", sys_updated_by="bob"),
                    message_id="demo-4")
        for attempt in range(3):
            [(update, body)] = esb.take("sb.out.vendor-x", 1, timeout=10)
            if attempt < 2:
                esb.publish("vendor-x", {"status": "error", "code": "LOCKED", "message": "open in another session"},
                            type="ack", correlation_id=update.message_id, message_id=f"demo-lock-{attempt}")
                say(f"  update {update.message_id}: locked")
            else:
                esb.publish("vendor-x", {"status": "ok"}, type="ack", correlation_id=update.message_id, message_id="demo-ok")
                say(f"  update {update.message_id}: ok")

        say("A updates again; this time the ticket stays locked")
        esb.publish("customer-a", incident(number, priority="1", description="Plants 1-4 cannot post orders", sys_updated_by="bob"),
                    message_id="demo-5")
        for attempt in range(4):
            [(update, _)] = esb.take("sb.out.vendor-x", 1, timeout=10)
            esb.publish("vendor-x", {"status": "error", "code": "LOCKED"}, type="ack", correlation_id=update.message_id,
                        message_id=f"demo-lock2-{attempt}")
            say(f"  update {update.message_id}: locked")
        [(comment, body)] = esb.take("sb.out.customer-a", 1, timeout=10)
        say(f"A's ESB receives a {comment.type}: {json.loads(body)['comments']}")

        say(f"X's engineer works on {key}, then returns it to the customer")
        esb.publish("vendor-x", jira(key, number, status="In Progress", user="Vera Vendor"), message_id="demo-6")
        esb.publish("vendor-x", jira(key, number, status="Returned to customer", user="Vera Vendor"), message_id="demo-7")
        for props, body in esb.take("sb.out.customer-a", 2, timeout=10):
            say(f"A's ESB receives a {props.type} ({props.headers['x-sb-rule']}): {body.decode()}")

        time.sleep(0.3)
        print()
        print(sb.timeline("customer-a", number))
        esb.close()
    except Exception:
        sys.stderr.write(sb.output())
        raise
    finally:
        sb.stop()
        mgmt("DELETE", f"/api/vhosts/{vhost}")


if __name__ == "__main__":
    main()
