import Foundation
import JSONPath

/// What to do when an endpoint refuses a message (`retries:` in the configuration): which error acks,
/// how long to wait, how many times or for how long, what to send again and what to send on giving up.
/// The engine applies it (`Engine+Retry.swift`) before any rule sees the ack.
///
/// Its state lives in the conversation, where an operator sees it: the counter `retry:<name>:<type>`
/// (sends again so far of that message type; 0 after an ok ack or on giving up) and, with `within`,
/// `retry:<name>:<type>:since` (when the first refusal of the run came, unix seconds). Its resends wait
/// on a timer named `retry:<name>`.
package struct RetryPolicy: Sendable {
    package enum Wait: Sendable {
        /// The same wait each time.
        case fixed(Int)
        /// `initialMs`, then `factor` times the previous wait, at most `maxMs`; with `jitter` (0...1) each
        /// wait is shortened by up to that fraction (one of four steps, chosen from the conversation and the
        /// attempt, so a replay waits exactly as the original did).
        case exponential(initialMs: Int, factor: Double, maxMs: Int, jitter: Double)
        /// The time the ack names at `path` (seconds as a number or "120", a duration "90s", an HTTP date or
        /// an ISO 8601 time), rounded up to a step of `RetryPolicy.ladder` and at most `maxMs`; `defaultMs`
        /// when the ack names none.
        case fromAck(JSONPath, defaultMs: Int, maxMs: Int)
    }

    package enum Resend: String, Sendable {
        /// The refused message's body as it was sent.
        case same
        /// The send of the rule that made it, built again from the conversation as it is when the timer
        /// fires (its attributes, counters and references; the message that triggered it is not at hand).
        case rebuild
    }

    package var name: String
    /// The endpoint whose error acks it handles.
    package var endpoint: String
    package var description = ""
    /// Which refusals it handles, tested on the ack (any status but ok is a refusal).
    package var conditions: [Condition] = []
    /// The refused message's types it covers; empty: every type.
    package var types: Set<String> = []
    /// The rules whose messages it covers; empty: every rule's.
    package var rules: Set<String> = []
    package var wait: Wait
    /// The most sends again per run of refusals; nil: only `withinMs` bounds it.
    package var attempts: Int?
    /// The longest a run of refusals may last, from the first; nil: only `attempts` bounds it.
    package var withinMs: Int?
    package var resend: Resend = .rebuild
    /// What goes out when it gives up (each with its own `when:`; `meta: acked_type` names what was refused).
    package var giveUp: [Send] = []
    package var location: SourceLocation

    package init(name: String, endpoint: String, wait: Wait, location: SourceLocation) {
        self.name = name
        self.endpoint = endpoint
        self.wait = wait
        self.location = location
    }

    /// The names it appears under on the timeline, in metrics and in `x-sb-rule`.
    package var timerName: String { "retry:\(name)" }
    /// Matched when a refusal schedules a send again.
    package var retryName: String { "retry:\(name)" }
    /// Matched when the timer fires and the message goes out again.
    package var resendName: String { "retry:\(name):resend" }
    /// Matched when it gives up; the rule of the messages it sends then.
    package var giveUpName: String { "retry:\(name):give-up" }
    /// Matched when an ok ack ends a run of refusals.
    package var resetName: String { "retry:\(name):reset" }
    /// Every name it matches under, as a rule would (the feed's rule filter offers them).
    package var matchNames: [String] { [retryName, resendName, giveUpName, resetName] }
    package func counter(_ type: String) -> String { "retry:\(name):\(type)" }
    package func sinceCounter(_ type: String) -> String { "retry:\(name):\(type):since" }

    /// Whether it covers a message of this type from this rule sent to its endpoint.
    package func covers(target: String, type: String, rule: String) -> Bool {
        target == endpoint && (types.isEmpty || types.contains(type)) && (rules.isEmpty || rules.contains(rule))
    }

    /// Steps a wait named by an ack is rounded up to (each a delay queue): 1 s to 24 h.
    package static let ladder: [Int] = [1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14_400, 28_800, 43_200, 86_400].map { $0 * 1000 }

    /// The wait before send again number `attempt` (1 for the first).
    package func waitMs(attempt: Int, ack: JSON, seed: String, now: Date?, budget: RegexBudget) -> Int {
        switch wait {
        case .fixed(let ms):
            return ms
        case .exponential(let initial, let factor, let maxMs, let jitter):
            let base = Self.exponentialStep(attempt: attempt, initialMs: initial, factor: factor, maxMs: maxMs)
            guard jitter > 0 else { return base }
            return Self.jittered(base, jitter: jitter, step: Self.stableHash("\(seed)#\(attempt)") % 4)
        case .fromAck(let path, let defaultMs, let maxMs):
            guard let named = path.first(ack, budget: budget).flatMap({ Self.namedWaitMs($0, now: now) }) else { return defaultMs }
            return Self.roundUp(named, maxMs: maxMs)
        }
    }

    /// Every wait it can choose: each needs a delay queue of its own.
    package var possibleDelays: Set<Int> {
        switch wait {
        case .fixed(let ms):
            return [ms]
        case .exponential(let initial, let factor, let maxMs, let jitter):
            var out: Set<Int> = []
            var attempt = 1
            while true {
                let base = Self.exponentialStep(attempt: attempt, initialMs: initial, factor: factor, maxMs: maxMs)
                for step in 0..<(jitter > 0 ? 4 : 1) { out.insert(jitter > 0 ? Self.jittered(base, jitter: jitter, step: step) : base) }
                if base >= maxMs || attempt >= (attempts ?? 64) { break }
                attempt += 1
            }
            return out
        case .fromAck(_, let defaultMs, let maxMs):
            return Set(Self.ladder.filter { $0 < maxMs } + [maxMs, defaultMs])
        }
    }

    static func exponentialStep(attempt: Int, initialMs: Int, factor: Double, maxMs: Int) -> Int {
        let ms = Double(initialMs) * pow(factor, Double(max(0, attempt - 1)))
        return ms >= Double(maxMs) ? maxMs : max(1, Int(ms.rounded()))
    }

    /// Shortened by `step` quarters of `jitter` (step 0: the whole wait).
    static func jittered(_ ms: Int, jitter: Double, step: Int) -> Int {
        max(1, Int((Double(ms) * (1 - jitter * Double(step) / 4)).rounded()))
    }

    /// The smallest ladder step not shorter than `ms`, at most `maxMs`.
    static func roundUp(_ ms: Int, maxMs: Int) -> Int {
        min(maxMs, ladder.first { $0 >= ms } ?? maxMs)
    }

    /// What an ack says to wait: seconds ("120", 120), a duration ("90s", "500ms", "2m"), an HTTP date
    /// ("Wed, 21 Oct 2026 07:28:00 GMT") or an ISO 8601 time, counted from `now`. Nil when it names none.
    package static func namedWaitMs(_ value: JSON, now: Date?) -> Int? {
        if case .number(let n) = value { return n.value >= 0 ? Int((n.value * 1000).rounded()) : nil }
        guard let text = value.scalarText?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
        if let seconds = Double(text) { return seconds >= 0 ? Int((seconds * 1000).rounded()) : nil }
        for (suffix, factor) in [("ms", 1.0), ("s", 1000), ("m", 60_000), ("h", 3_600_000)] where text.lowercased().hasSuffix(suffix) {
            if let n = Double(text.dropLast(suffix.count)), n >= 0 { return Int((n * factor).rounded()) }
        }
        guard let now, let date = date(text) else { return nil }
        return max(0, Int((date.timeIntervalSince(now) * 1000).rounded()))
    }

    private static func date(_ text: String) -> Date? {
        let iso = ISO8601DateFormatter()
        iso.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = iso.date(from: text) { return d }
        iso.formatOptions = [.withInternetDateTime]
        if let d = iso.date(from: text) { return d }
        let http = DateFormatter()
        http.locale = Locale(identifier: "en_US_POSIX")
        http.timeZone = TimeZone(identifier: "GMT")
        http.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return http.date(from: text)
    }

    /// FNV-1a: the same on every machine and every run (Swift's `hashValue` is seeded per process).
    static func stableHash(_ s: String) -> Int {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return Int(h % 1_000_003)
    }
}

extension RetryPolicy.Wait {
    /// How the wait reads to an operator (the admin's configuration page).
    package var summary: String {
        switch self {
        case .fixed(let ms): return Engine.format(ms: ms)
        case .exponential(let initial, let factor, let maxMs, let jitter):
            return "\(Engine.format(ms: initial)), x\(JSONNumber(factor).description) each time, at most \(Engine.format(ms: maxMs))"
                + (jitter > 0 ? ", up to \(Int((jitter * 100).rounded())) % shorter" : "")
        case .fromAck(let path, let defaultMs, let maxMs):
            return "what the ack names at \(path.source) (at most \(Engine.format(ms: maxMs)); \(Engine.format(ms: defaultMs)) when none)"
        }
    }
}
