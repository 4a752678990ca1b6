// The pages' style and their little script (no build chain): the live feed, select-all, job progress.
enum Static {
    static let css = """
        :root { --fg:#1d2430; --muted:#667085; --line:#e4e7ec; --bg:#f7f8fa; --accent:#2457c5; --err:#b42318; --warn:#b54708; --ok:#067647; }
        * { box-sizing: border-box; }
        body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--fg); background:var(--bg); }
        header.bar { display:flex; flex-wrap:wrap; gap:16px; align-items:center; padding:10px 24px; background:#101828; color:#fff; }
        header.bar a { color:#d0d5dd; text-decoration:none; }
        header.bar a.brand { color:#fff; font-weight:700; font-size:16px; }
        header.bar nav { display:flex; gap:14px; }
        header.bar nav a.on { color:#fff; border-bottom:2px solid #7aa2ff; }
        header.bar form.search { margin-left:auto; display:flex; gap:6px; }
        header.bar form.search input { width:260px; }
        header.bar form.who { display:flex; gap:8px; align-items:center; color:#d0d5dd; }
        main { padding:20px 24px 48px; max-width:1400px; }
        h1 { font-size:22px; margin:4px 0 12px; } h2 { font-size:16px; margin:24px 0 8px; }
        .muted { color:var(--muted); } .error { color:var(--err); } .warn { color:var(--warn); }
        h3 { font-size:14px; margin:16px 0 6px; }
        .charts .row { display:flex; flex-wrap:wrap; gap:10px; } .charts svg.chart { background:#fff; border:1px solid var(--line); border-radius:8px; }
        input, select, button { font:inherit; padding:5px 8px; border:1px solid #c8ccd4; border-radius:6px; background:#fff; }
        button, .button { cursor:pointer; background:#fff; color:var(--fg); text-decoration:none; display:inline-block; border:1px solid #c8ccd4; border-radius:6px; padding:5px 10px; }
        button.primary { background:var(--accent); border-color:var(--accent); color:#fff; }
        button.danger { background:#fff; border-color:var(--err); color:var(--err); }
        button.link { background:none; border:none; color:#d0d5dd; text-decoration:underline; padding:0; }
        .card { background:#fff; border:1px solid var(--line); border-radius:10px; padding:12px 16px; }
        .narrow { max-width:420px; margin:40px auto; } .narrow label { display:block; margin:10px 0; } .narrow input { width:100%; }
        .cols { display:grid; grid-template-columns:repeat(auto-fit, minmax(280px, 1fr)); gap:16px; }
        .head { display:flex; align-items:center; gap:16px; } .head .button, .head button, .head .buttons { margin-left:auto; }
        .head .buttons { display:flex; gap:8px; } .head .buttons .button { margin-left:0; }
        form.whatif { display:grid; grid-template-columns:repeat(3, auto) 1fr; gap:10px 14px; align-items:end; max-width:1100px; }
        form.whatif label { display:flex; flex-direction:column; font-size:12px; color:var(--muted); }
        form.whatif label.wide { grid-column:1 / -1; } form.whatif button { justify-self:start; }
        textarea { font:12.5px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; padding:6px 8px; border:1px solid #c8ccd4; border-radius:6px; width:100%; box-sizing:border-box; }
        pre#trace { max-height:none; white-space:pre-wrap; overflow-wrap:anywhere; }
        table.grid { width:100%; border-collapse:collapse; background:#fff; border:1px solid var(--line); border-radius:10px; overflow:hidden; }
        table.grid th, table.grid td { text-align:left; padding:7px 10px; border-bottom:1px solid var(--line); vertical-align:top; }
        table.grid th { background:#f2f4f7; font-weight:600; font-size:13px; }
        table.kv th { text-align:left; padding:4px 12px 4px 0; color:var(--muted); font-weight:500; white-space:nowrap; vertical-align:top; }
        table.kv td { padding:4px 0; word-break:break-word; }
        table.grid td:nth-child(3), table.timeline td:nth-child(5) { white-space:nowrap; }
        td.t { white-space:nowrap; font-variant-numeric:tabular-nums; color:#344054; }
        td.ticket { font-weight:600; }
        code, pre { font:12.5px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; }
        pre { background:#f2f4f7; padding:8px 10px; border-radius:6px; overflow:auto; max-height:420px; margin:6px 0; }
        details summary { cursor:pointer; color:var(--accent); margin-top:4px; }
        .kind { font-weight:600; white-space:nowrap; }
        tr.k-ack-error .kind, tr.k-ack-unhandled .kind, tr.k-warning .kind { color:var(--err); }
        tr.k-acked .kind { color:var(--ok); } tr.k-sent .kind { color:var(--accent); }
        .hop { color:var(--muted); font-size:12px; }
        .state, .status { display:inline-block; padding:1px 8px; border-radius:999px; font-size:12px; font-weight:600; background:#eef2f6; }
        .s-sent, .s-acked, .st-operational { background:#dcfae6; color:var(--ok); }
        .s-failed, .s-parked, .st-error { background:#fee4e2; color:var(--err); }
        .s-no-rule, .s-delayed, .st-warning { background:#fef0c7; color:var(--warn); }
        .s-dropped { background:#eaecf0; color:#475467; }
        form.filters { display:flex; flex-wrap:wrap; gap:10px; align-items:end; margin-bottom:12px; }
        form.filters label { display:flex; flex-direction:column; font-size:12px; color:var(--muted); }
        form.bigsearch { display:flex; gap:8px; margin:8px 0 8px; } form.bigsearch input { width:420px; font-size:16px; padding:8px 10px; }
        .actions { display:flex; gap:10px; align-items:center; margin:12px 0; }
        table.why th { text-align:left; padding-right:12px; font-weight:600; white-space:nowrap; } table.why td { color:#475467; }
        td.sum { max-width:460px; word-break:break-word; }
        progress { width:420px; height:16px; }
        tr.new { animation: flash 2s ease-out; } @keyframes flash { from { background:#e0eaff; } to { background:#fff; } }
        """

    static let js = """
        (function () {
          var all = document.getElementById('all');
          if (all) all.addEventListener('change', function () {
            document.querySelectorAll('input[name=ids]').forEach(function (b) { b.checked = all.checked; });
          });
          var feed = document.getElementById('feed');
          var pause = document.getElementById('pause');
          if (feed && pause) {
            var live = true;
            pause.addEventListener('click', function () {
              live = !live; pause.textContent = live ? 'Pause' : 'Resume'; pause.dataset.live = live ? '1' : '0';
            });
            function text(v) { return v === null || v === undefined ? '' : String(v); }
            function cell(tr, v, cls) { var td = document.createElement('td'); if (cls) td.className = cls; td.textContent = text(v); tr.appendChild(td); return td; }
            function poll() {
              if (!live) return;
              var body = feed.tBodies[0];
              var first = body.querySelector('tr[data-cursor]');
              var newest = first ? Number(first.dataset.cursor) : 0;
              fetch('/api/v1/messages?' + feed.dataset.query, { credentials: 'same-origin' }).then(function (r) { return r.ok ? r.json() : null; }).then(function (j) {
                if (!j) return;
                var fresh = j.messages.filter(function (m) { return m.cursor > newest; }).reverse();
                fresh.forEach(function (m) {
                  var empty = body.querySelector('tr.empty'); if (empty) empty.remove();
                  var tr = document.createElement('tr'); tr.dataset.cursor = m.cursor; tr.className = 'new';
                  cell(tr, m.at.replace('T', ' ').replace('Z', ''), 't');
                  var st = cell(tr, ''); var span = document.createElement('span'); span.className = 'state s-' + m.state; span.textContent = m.state; st.appendChild(span);
                  cell(tr, m.endpoint); cell(tr, m.type); cell(tr, m.who); cell(tr, m.rules.join(', '));
                  var c = cell(tr, '');
                  if (m.conversation_id) { var a = document.createElement('a'); a.href = '/conversations/' + encodeURIComponent(m.conversation_id); a.textContent = m.conversation_id.slice(0, 8); c.appendChild(a); }
                  cell(tr, m.summary, 'sum');
                  body.insertBefore(tr, body.firstChild);
                });
              }).catch(function () {});
            }
            setInterval(poll, 2000);
          }
          var job = document.getElementById('job');
          if (job && job.dataset.state === 'running') {
            var timer = setInterval(function () {
              fetch('/api/v1/parked/actions/' + job.dataset.job, { credentials: 'same-origin' }).then(function (r) { return r.json(); }).then(function (j) {
                job.querySelector('progress').value = j.done;
                job.querySelector('.jobdone').textContent = j.done;
                job.querySelector('.jobstate').textContent = j.state;
                job.querySelector('.r').textContent = j.replayed; job.querySelector('.d').textContent = j.discarded;
                job.querySelector('.f').textContent = j.failed; job.querySelector('.n').textContent = j.missing;
                if (j.state !== 'running') { clearInterval(timer); location.reload(); }
              });
            }, 700);
          }
        })();
        """
}
