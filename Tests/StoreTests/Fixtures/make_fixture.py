"""Makes the store fixtures that the upgrade tests open (StoreUpgradeTests): a database written by an older
release's `switchboard run`, on SQLite and on PostgreSQL, dumped as SQL.

    git worktree add /tmp/old a534a15 && (cd /tmp/old && swift build --product switchboard)
    make broker postgres
    SB_BINARY=/tmp/old/.build/debug/switchboard SB_TEST_POSTGRES_URL=$(bash Deploy/local/postgres.sh url) \\
        python3 Tests/StoreTests/Fixtures/make_fixture.py a534a15

What it holds: two tickets through the example configuration (created at vendor-x, acked with vendor-x's key,
an update refused as LOCKED, which the rules resend after a delay).
"""
import os
import shutil
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "esb"))

from conftest import ESB, Switchboard, flow, fresh_vhost, postgres_url  # noqa: E402


def exercise(vhost, store_url=None):
    esb = ESB(vhost)
    sb = Switchboard(vhost, store_url=store_url)
    # That release's own example configuration (from its checkout, next to its binary's .build).
    shutil.rmtree(sb.config)
    shutil.copytree(os.path.join(os.environ["SB_BINARY"].split("/.build/")[0], "Config"), sb.config)
    sb.start()
    try:
        for number, key in (("INC0000001", "VX-1"), ("INC0000002", "VX-2")):
            flow(esb, number, key)
        esb.publish("customer-a", b"{not json", message_id="broken-1", raw=True)
        # That release parked into the queue sb.parked (later ones keep parked messages in the store).
        deadline = time.time() + 20
        while esb.depth("sb.parked") < 1 and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(2.5)  # the LOCKED answer and its retry timer are committed too
        assert esb.depth("sb.parked") == 1, sb.output()[-2000:]
        esb.purge("sb.parked")
        return sb
    finally:
        sb.stop()
        esb.close()


def main(commit):
    gen = fresh_vhost("sb-fixture-")
    vhost = next(gen)
    try:
        sb = exercise(vhost)
        db = os.path.join(sb.data, "switchboard.sqlite")
        dump = subprocess.run(["sqlite3", db, ".dump"], check=True, capture_output=True, text=True).stdout
        with open(os.path.join(HERE, f"{commit}.sqlite.sql"), "w") as f:
            f.write(dump)
        schema = "fixture_" + uuid.uuid4().hex[:8]
        exercise(vhost, postgres_url(schema))
        url = os.environ["SB_TEST_POSTGRES_URL"]
        dump = subprocess.run(["pg_dump", "--no-owner", "--no-privileges", "--schema", schema, url],
                              check=True, capture_output=True, text=True).stdout
        with open(os.path.join(HERE, f"{commit}.postgres.sql"), "w") as f:
            f.write(dump.replace(schema, "sb_fixture_schema"))
        subprocess.run(["psql", url, "-c", f"DROP SCHEMA {schema} CASCADE"], check=True, capture_output=True)
    finally:
        next(gen, None)


if __name__ == "__main__":
    main(sys.argv[1])
