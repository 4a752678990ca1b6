// The pages' mustache templates, compiled into the binary so that a deployment is one file. `{{x}}`
// escapes HTML; nothing here uses triple braces: every value shown is escaped.
enum Templates {
    static let all: [String: String] = [
        "top": top, "bottom": bottom, "signin": signin, "home": home, "search": search, "conversation": conversation,
        "feed": feed, "endpoints": endpoints, "parked": parked, "parkedone": parkedOne, "job": job, "config": config,
        "audit": audit, "problem": problem, "whatif": whatIf,
    ]

    static let top = """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
        <title>{{title}} · Switchboard</title><link rel="stylesheet" href="/static/app.css"></head>
        <body data-page="{{page}}">
        <header class="bar">
          <a class="brand" href="/">Switchboard</a>
          {{#user}}
          <nav>
            <a href="/" class="{{#navHome}}on{{/navHome}}">Conversations</a>
            <a href="/feed" class="{{#navFeed}}on{{/navFeed}}">Message feed</a>
            <a href="/endpoints" class="{{#navEndpoints}}on{{/navEndpoints}}">Endpoints</a>
            <a href="/parked" class="{{#navParked}}on{{/navParked}}">Parked</a>
            <a href="/config" class="{{#navConfig}}on{{/navConfig}}">Configuration</a>
            {{#operator}}<a href="/whatif" class="{{#navWhatIf}}on{{/navWhatIf}}">What if</a>{{/operator}}
            <a href="/audit" class="{{#navAudit}}on{{/navAudit}}">Audit</a>
          </nav>
          <form class="search" action="/search" method="get"><input name="q" placeholder="Any ticket id (INC0010001, VX-1001)" value="{{query}}" aria-label="Ticket id"><button>Find</button></form>
          <form class="who" action="/sign-out" method="post"><input type="hidden" name="csrf" value="{{csrf}}"><span>{{user}} · {{role}}</span><button class="link">Sign out</button></form>
          {{/user}}
        </header>
        <main>
        """

    static let bottom = """
        </main>
        <script src="/static/app.js"></script>
        </body></html>
        """

    static let signin = """
        {{> top}}
        <section class="card narrow">
          <h1>Sign in</h1>
          {{#error}}<p class="error">{{error}}</p>{{/error}}
          <form method="post" action="/sign-in">
            <input type="hidden" name="next" value="{{next}}">
            <input type="hidden" name="signin_csrf" value="{{signin_csrf}}">
            <label>User <input name="user" autocomplete="username" required autofocus></label>
            <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
            <button class="primary">Sign in</button>
          </form>
        </section>
        {{> bottom}}
        """

    static let home = """
        {{> top}}
        <h1>Conversations</h1>
        <form class="bigsearch" action="/search" method="get">
          <input name="q" placeholder="Type any endpoint's ticket id" aria-label="Ticket id" autofocus>
          <button class="primary">Find the conversation</button>
        </form>
        <p class="muted">{{conversations}} conversation(s) in the store · {{parked}} parked message(s) · configuration {{hash}}</p>
        <h2>Recently changed</h2>
        <table class="grid">
          <thead><tr><th>Time (UTC)</th><th>Conversation</th><th>From</th><th>Type</th><th>State</th></tr></thead>
          <tbody>
          {{#recent}}<tr><td class="t">{{at}}</td><td><a href="/conversations/{{conversation}}">{{conversation}}</a></td><td>{{endpoint}}</td><td>{{type}}</td><td><span class="state s-{{state}}">{{state}}</span></td></tr>{{/recent}}
          {{^recent}}<tr><td colspan="5" class="muted">Nothing has flowed yet.</td></tr>{{/recent}}
          </tbody>
        </table>
        {{> bottom}}
        """

    static let search = """
        {{> top}}
        <h1>Ticket {{query}}</h1>
        {{#hits}}<p><a href="/conversations/{{conversationId}}">{{endpoint}} / {{ticketId}}</a> → conversation {{conversationId}}</p>{{/hits}}
        {{^hits}}<p class="error">No endpoint has a ticket {{query}} in a conversation. Ticket ids are exact (case and spaces count).</p>{{/hits}}
        {{> bottom}}
        """

    static let conversation = """
        {{> top}}
        <div class="head">
          <h1>Conversation <code>{{id}}</code></h1>
          <span class="buttons">
            <a class="button" href="/conversations/{{id}}/export" download>Export as JSON</a>
            <a class="button" id="capture" href="/conversations/{{id}}/capture" download>Capture as a rule test</a>
            {{#operator}}<a class="button" id="whatif" href="/whatif?conversation={{id}}">What if…</a>{{/operator}}
          </span>
        </div>
        <p class="muted">Started {{createdAt}} · last change {{updatedAt}} · version {{version}}</p>
        <div class="cols">
          <section class="card"><h2>Tickets</h2>
            <table class="kv">{{#tickets}}<tr><th>{{endpoint}}</th><td class="ticket">{{ticketId}}</td></tr>{{/tickets}}</table>
          </section>
          <section class="card"><h2>Attributes</h2>
            <table class="kv">{{#attributes}}<tr><th>{{name}}</th><td><code>{{value}}</code></td></tr>{{/attributes}}{{^attributes}}<tr><td class="muted">none</td></tr>{{/attributes}}</table>
          </section>
          <section class="card"><h2>Counters</h2>
            <table class="kv">{{#counters}}<tr><th>{{name}}</th><td>{{value}}</td></tr>{{/counters}}{{^counters}}<tr><td class="muted">none</td></tr>{{/counters}}</table>
          </section>
        </div>
        <h2>Timeline <span class="muted">(oldest first, UTC)</span></h2>
        <table class="grid timeline">
          <thead><tr><th>Time</th><th>Event</th><th>Endpoint</th><th>By</th><th>Rule</th><th>What happened</th></tr></thead>
          <tbody>
          {{#entries}}
          <tr class="k-{{kind}}">
            <td class="t">{{at}}</td><td><span class="kind">{{label}}</span></td><td>{{endpoint}}</td><td>{{who}}</td><td>{{rule}}</td>
            <td>{{detail}}{{#hop}} <span class="hop">{{hop}} after it was sent</span>{{/hop}}{{#decided}} <span class="hop">decided {{decided}} after intake received it</span>{{/decided}}
              {{#failure}}<div class="error">failed: {{failure}}</div>{{/failure}}
              {{#body}}<details><summary>message body</summary><pre>{{body}}</pre></details>{{/body}}
              {{#why}}<details><summary>why no rule matched</summary><table class="why">{{#misses}}<tr><th>{{rule}}</th><td>{{reason}}</td></tr>{{/misses}}</table></details>{{/why}}
            </td>
          </tr>
          {{/entries}}
          </tbody>
        </table>
        {{> bottom}}
        """

    static let whatIf = """
        {{> top}}
        <div class="head"><h1>What if</h1></div>
        <p class="muted">What one message would do: each rule in the order they are evaluated, matched or why not, what it would
        send, schedule, link and change. Nothing is sent and nothing is stored. With a conversation id, the rules meet that
        conversation's attributes, counters and references as they are now.</p>
        <form method="post" action="/whatif" class="whatif">
          <input type="hidden" name="csrf" value="{{csrf}}">
          <label>From <select name="endpoint"><option value="">the endpoint whose ticket_id finds a value</option>{{#endpointOptions}}<option value="{{value}}" {{#selected}}selected{{/selected}}>{{value}}</option>{{/endpointOptions}}</select></label>
          <label>Type <input name="type" value="{{type}}" size="18" placeholder="the AMQP type, if set"></label>
          <label>Conversation <input name="conversation" value="{{conversation}}" size="40" placeholder="empty: a new conversation"></label>
          <label class="wide">Message (JSON)<textarea name="message" rows="12" spellcheck="false" required>{{message}}</textarea></label>
          <button>Try it</button>
        </form>
        {{#trace}}<h2>Decision</h2><pre id="trace">{{trace}}</pre>{{/trace}}
        {{> bottom}}
        """

    static let feed = """
        {{> top}}
        <div class="head"><h1>Message feed</h1>
          <button id="pause" class="button" type="button" data-live="1">Pause</button></div>
        <form class="filters" method="get" action="/feed">
          <label>Endpoint <select name="endpoint"><option value="">any</option>{{#endpointOptions}}<option value="{{value}}" {{#selected}}selected{{/selected}}>{{value}}</option>{{/endpointOptions}}</select></label>
          <label>State <select name="state"><option value="">any</option>{{#stateOptions}}<option value="{{value}}" {{#selected}}selected{{/selected}}>{{value}}</option>{{/stateOptions}}</select></label>
          <label>Rule <select name="rule"><option value="">any</option>{{#ruleOptions}}<option value="{{value}}" {{#selected}}selected{{/selected}}>{{value}}</option>{{/ruleOptions}}</select></label>
          <label>Ticket <input name="ticket" value="{{ticket}}" size="14"></label>
          <label>Since <input name="since" value="{{since}}" placeholder="2026-12-01T08:00:00Z" size="22"></label>
          <label>Until <input name="until" value="{{until}}" placeholder="ISO 8601" size="22"></label>
          <button>Filter</button> <a href="/feed">clear</a>
        </form>
        <table class="grid" id="feed" data-query="{{apiQuery}}">
          <thead><tr><th>Time (UTC)</th><th>State</th><th>From</th><th>Type</th><th>By</th><th>Rules</th><th>Conversation</th><th>Summary</th></tr></thead>
          <tbody>
          {{#items}}
          <tr data-cursor="{{cursor}}"><td class="t">{{at}}</td><td><span class="state s-{{state}}">{{state}}</span></td><td>{{endpoint}}</td><td>{{type}}</td><td>{{who}}</td><td>{{rules}}</td>
            <td>{{#conversation}}<a href="/conversations/{{conversation}}">{{short}}</a>{{/conversation}}{{#parkedId}}<a href="/parked/{{parkedId}}">parked</a>{{/parkedId}}</td><td class="sum">{{summary}}</td></tr>
          {{/items}}
          {{^items}}<tr class="empty"><td colspan="8" class="muted">No message matches.</td></tr>{{/items}}
          </tbody>
        </table>
        {{#older}}<p><a href="{{older}}">Older messages →</a></p>{{/older}}
        {{> bottom}}
        """

    static let endpoints = """
        {{> top}}
        <h1>Endpoints</h1>
        {{#brokerError}}<p class="error">Broker: {{brokerError}}</p>{{/brokerError}}
        {{#ageError}}<p class="error">Message ages unknown: {{ageError}}</p>{{/ageError}}
        <p class="muted">As of {{at}} · in the delay queues: {{delayedQueues}} · parked in all: {{parkedTotal}} · warning above {{warnDepth}} waiting or {{warnAge}} s old</p>
        <table class="grid">
          <thead><tr><th>Endpoint</th><th>Status</th><th>Inbound waiting</th><th>Outbound waiting</th><th>Parked</th><th>Delayed</th><th>Oldest waiting</th><th>Why</th></tr></thead>
          <tbody>
          {{#endpoints}}
          <tr><td><b>{{name}}</b><div class="muted">{{description}}</div></td><td><span class="status st-{{status}}">{{status}}</span></td>
            <td>{{inbound}} <span class="muted">({{inboundConsumers}} consumer(s))</span></td><td>{{outbound}} <span class="muted">({{outboundConsumers}} consumer(s))</span></td>
            <td>{{parked}}</td><td>{{delayed}}</td><td>{{oldest}}</td><td>{{#reasons}}<div>{{.}}</div>{{/reasons}}</td></tr>
          {{/endpoints}}
          </tbody>
        </table>
        <h2 id="charts">The last hour</h2>
        <p class="muted">A sample every {{chartEvery}} since {{chartsSince}}, kept by this admin process (a restart starts again). In: messages from the endpoint decided; out: messages the rules sent to it; depth and age from the broker; p95 from intake to decision.{{#chartsCapped}} Some samples read only the newest 20,000 messages: their counts are lower bounds.{{/chartsCapped}}</p>
        {{#charts}}
        <div class="charts" data-endpoint="{{name}}"><h3>{{name}}</h3><div class="row">{{{messages}}}{{{depth}}}{{{age}}}{{{latency}}}</div></div>
        {{/charts}}
        {{#hasRest}}
        <h2 id="waiting">Waiting to be delivered</h2>
        <p class="muted">Messages to HTTP endpoints the delivery holds back: a rate limit (429), a locked ticket, a host whose circuit is open, or an earlier message of the same ticket in front. Every other ticket keeps flowing.</p>
        {{#waitingError}}<p class="error">Waits unknown: {{waitingError}}</p>{{/waitingError}}
        {{#waitingCut}}<p class="warn">{{waitingCut}}</p>{{/waitingCut}}
        {{#tried}}<p class="card" id="tried">Sent <code>{{tried}}</code> now: a copy went to the delivery, which sends it past the wait; the waiting one is dropped when it comes back. Its answer shows on the conversation.</p>{{/tried}}
        {{#restEndpoints}}
        <h3>{{name}} <span class="muted">({{count}} waiting)</span></h3>
        <table class="grid waiting" data-endpoint="{{name}}">
          <thead><tr><th>Ticket</th><th>Message</th><th>Why</th><th>Scope</th><th>Waiting since</th><th>Next attempt</th><th>Waits</th><th></th></tr></thead>
          <tbody>
          {{#waiting}}
          <tr data-message="{{messageId}}"><td><a href="/conversations/{{conversation}}">{{ticket}}</a></td>
            <td>{{type}} <code title="{{messageId}}">{{shortId}}</code>{{#behind}}<div class="muted" data-behind="{{behindId}}">behind <code title="{{behindId}}">{{behind}}</code></div>{{/behind}}</td>
            <td>{{#code}}<b>{{code}}</b> {{/code}}{{reason}}</td><td>{{scope}}</td><td>{{since}} <span class="muted">({{waited}})</span></td><td>{{next}}</td><td>{{waits}}</td>
            <td><form method="post" action="/endpoints/try-now" class="try-now"><input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="endpoint" value="{{endpoint}}"><input type="hidden" name="message" value="{{messageId}}"><button type="submit" title="Send it now, past the wait">Try now</button></form></td></tr>
          {{/waiting}}
          {{#none}}<tr class="empty"><td colspan="8" class="muted">Nothing waits.</td></tr>{{/none}}
          </tbody>
        </table>
        {{/restEndpoints}}
        {{/hasRest}}
        {{> bottom}}
        """

    static let parked = """
        {{> top}}
        <h1>Parked messages</h1>
        <p class="muted">{{total}} parked · showing {{shown}}{{#group}} · group “{{group}}” <a href="/parked">all groups</a>{{/group}}</p>
        <h2>By reason</h2>
        <table class="grid"><thead><tr><th>Reason</th><th>Messages</th></tr></thead><tbody>
        {{#groups}}<tr><td><a href="/parked?group={{encoded}}">{{reason}}</a></td><td>{{count}}</td></tr>{{/groups}}
        {{^groups}}<tr><td colspan="2" class="muted">Nothing is parked.</td></tr>{{/groups}}
        </tbody></table>
        {{#hasMessages}}
        <h2>Messages</h2>
        <form method="post" action="/parked/actions" id="parked-form">
          <input type="hidden" name="csrf" value="{{csrf}}">
          <table class="grid"><thead><tr><th><input type="checkbox" id="all" title="select all shown"></th><th>Parked at</th><th>Endpoint</th><th>Ticket</th><th>Stage</th><th>Message id</th><th>Reason</th><th>Body (start)</th></tr></thead><tbody>
          {{#messages}}<tr><td><input type="checkbox" name="ids" value="{{id}}"></td><td class="t">{{parkedAt}}</td><td>{{endpoint}}</td><td>{{ticket}}</td><td>{{stage}}</td><td><a href="/parked/{{id}}">{{messageId}}</a></td><td>{{reason}}</td><td><code>{{excerpt}}</code></td></tr>{{/messages}}
          </tbody></table>
          {{#next}}<p><a href="{{next}}">Older ones after these</a></p>{{/next}}
          {{#operator}}
          <div class="actions">
            <label>Why <input name="reason" required placeholder="e.g. fixed endpoints.yaml ticket_id" size="40"></label>
            <button name="action" value="replay" class="primary">Replay selected</button>
            <button name="action" value="discard" class="danger">Discard selected</button>
          </div>
          {{/operator}}
          {{^operator}}<p class="muted">Replay and discard need the operator role.</p>{{/operator}}
        </form>
        {{/hasMessages}}
        {{> bottom}}
        """

    static let parkedOne = """
        {{> top}}
        <h1>Parked message <code>{{id}}</code></h1>
        <table class="kv card">
          <tr><th>Reason</th><td class="error">{{reason}}</td></tr>
          <tr><th>Parked at</th><td>{{parkedAt}} (stage {{stage}})</td></tr>
          <tr><th>Endpoint</th><td>{{endpoint}}</td></tr>
          {{#ticket}}<tr><th>Ticket</th><td>{{ticket}}</td></tr>{{/ticket}}
          <tr><th>Message id</th><td>{{messageId}}</td></tr>
          <tr><th>Published to</th><td>exchange {{exchange}}, routing key {{routingKey}}</td></tr>
          {{#properties}}<tr><th>{{name}}</th><td><code>{{value}}</code></td></tr>{{/properties}}
        </table>
        <h2>Body</h2>{{#truncated}}<p class="muted">Shown: {{truncated}}.</p>{{/truncated}}<pre class="card">{{body}}</pre>
        {{#operator}}
        <form method="post" action="/parked/actions" class="actions">
          <input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="ids" value="{{id}}">
          <label>Why <input name="reason" required size="40"></label>
          <button name="action" value="replay" class="primary">Replay</button>
          <button name="action" value="discard" class="danger">Discard</button>
        </form>
        {{/operator}}
        {{> bottom}}
        """

    static let job = """
        {{> top}}
        <h1>{{action}} of {{total}} parked message(s)</h1>
        <div id="job" data-job="{{id}}" data-state="{{state}}">
          <progress max="{{total}}" value="{{done}}"></progress>
          <p><b class="jobstate">{{state}}</b> · <span class="jobdone">{{done}}</span> of {{total}} · replayed <span class="r">{{replayed}}</span> · discarded <span class="d">{{discarded}}</span> · failed <span class="f">{{failed}}</span> · not found <span class="n">{{missing}}</span></p>
          {{#error}}<p class="error">{{error}}</p>{{/error}}
          {{#running}}<form method="post" action="/parked/actions/{{id}}/cancel"><input type="hidden" name="csrf" value="{{csrf}}"><button class="danger">Cancel</button></form>{{/running}}
        </div>
        <p class="muted">By {{who}}: {{reason}}</p>
        <p><a href="/parked">Back to parked messages</a></p>
        {{> bottom}}
        """

    static let config = """
        {{> top}}
        <h1>Configuration</h1>
        <table class="kv card">
          <tr><th>Content hash (SHA-256)</th><td><code>{{hash}}</code></td></tr>
          <tr><th>Loaded at</th><td>{{loadedAt}}</td></tr>
          <tr><th>Files</th><td>{{#files}}<div><code>{{.}}</code></div>{{/files}}</td></tr>
        </table>
        <h2>Endpoints</h2>
        <table class="grid"><thead><tr><th>Name</th><th>Description</th><th>Ticket id at</th></tr></thead><tbody>
        {{#endpoints}}<tr><td><b>{{name}}</b></td><td>{{description}}</td><td><code>{{ticketId}}</code></td></tr>{{/endpoints}}
        </tbody></table>
        <h2>Rules <span class="muted">(in evaluation order)</span></h2>
        <table class="grid"><thead><tr><th>Rule</th><th>Priority</th><th>From</th><th>Type</th><th>Description</th><th>Where</th></tr></thead><tbody>
        {{#rules}}<tr><td><b>{{name}}</b></td><td>{{priority}}</td><td>{{from}}</td><td>{{types}}</td><td>{{description}}</td><td class="muted">{{location}}</td></tr>{{/rules}}
        </tbody></table>
        {{#hasRetries}}
        <h2>Retry policies <span class="muted">(they handle the refusals they match before any rule)</span></h2>
        <table class="grid" id="retries"><thead><tr><th>Policy</th><th>Endpoint</th><th>Types</th><th>Wait</th><th>At most</th><th>Sends again</th><th>Gives up with</th><th>Where</th></tr></thead><tbody>
        {{#retries}}<tr><td><b>{{name}}</b></td><td>{{endpoint}}</td><td>{{types}}</td><td>{{wait}}</td><td>{{limit}}</td><td>{{resend}}</td><td>{{giveUp}}</td><td class="muted">{{location}}</td></tr>{{/retries}}
        </tbody></table>
        {{/hasRetries}}
        {{> bottom}}
        """

    static let audit = """
        {{> top}}
        <h1>Audit</h1>
        <p class="muted">Every replay and discard, newest first. Those of messages with a conversation are on its timeline too.</p>
        <table class="grid"><thead><tr><th>Time (UTC)</th><th>Who</th><th>Action</th><th>Why</th><th>Message</th><th>Conversation</th><th>Outcome</th></tr></thead><tbody>
        {{#records}}<tr><td class="t">{{at}}</td><td>{{who}}</td><td>{{action}}</td><td>{{reason}}</td><td>{{messageId}}</td><td>{{#conversationId}}<a href="/conversations/{{conversationId}}">{{conversationId}}</a>{{/conversationId}}</td><td>{{detail}}</td></tr>{{/records}}
        {{^records}}<tr><td colspan="7" class="muted">Nothing yet.</td></tr>{{/records}}
        </tbody></table>
        {{> bottom}}
        """

    static let problem = """
        {{> top}}
        <section class="card narrow"><h1>{{status}}</h1><p class="error">{{detail}}</p><p><a href="/">Home</a></p></section>
        {{> bottom}}
        """
}
