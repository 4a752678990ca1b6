import Foundation

/// A compiled RFC 9535 JSONPath query.
public struct JSONPath: Sendable, CustomStringConvertible {
    public let source: String
    let query: Query

    public init(_ source: String) throws(JSONPathError) {
        var parser = JSONPathParser(source)
        self.source = source
        self.query = try parser.parseQuery()
    }

    public var description: String { source }

    /// True when the query selects at most one node (names and indexes only).
    public var isSingular: Bool { query.isSingular }

    /// The values the query selects, in document order.
    /// `budget` bounds the work of `match()` and `search()` and says when they gave up (see `RegexBudget`).
    public func select(_ document: JSON, budget: RegexBudget? = nil) -> [JSON] {
        let evaluator = Evaluator(root: document, trackPaths: false, budget: budget)
        return evaluator.run(query, current: Node(value: document, path: nil)).map(\.value)
    }

    /// The first selected value, or nil when nothing matches.
    public func first(_ document: JSON, budget: RegexBudget? = nil) -> JSON? {
        select(document, budget: budget).first
    }

    /// Each selected value with its normalized path (RFC 9535 2.7), e.g. `$['store']['book'][0]`.
    public func locate(_ document: JSON) -> [(path: String, value: JSON)] {
        let evaluator = Evaluator(root: document, trackPaths: true, budget: nil)
        return evaluator.run(query, current: Node(value: document, path: PathBox([]))).map {
            (Self.normalized($0.path?.components ?? []), $0.value)
        }
    }

    static func normalized(_ components: [PathComponent]) -> String {
        var out = "$"
        for c in components {
            switch c {
            case .index(let i): out += "[\(i)]"
            case .name(let n):
                out += "['"
                for s in n.unicodeScalars {
                    switch s {
                    case "\u{08}": out += "\\b"
                    case "\u{0C}": out += "\\f"
                    case "\n": out += "\\n"
                    case "\r": out += "\\r"
                    case "\t": out += "\\t"
                    case "'": out += "\\'"
                    case "\\": out += "\\\\"
                    default:
                        if s.value < 0x20 {
                            out += String(format: "\\u%04x", s.value)
                        } else {
                            out.unicodeScalars.append(s)
                        }
                    }
                }
                out += "']"
            }
        }
        return out
    }
}

enum PathComponent: Sendable {
    case name(String)
    case index(Int)
}

/// A path shared by reference so that descending does not copy the whole array per node.
final class PathBox {
    let components: [PathComponent]
    init(_ components: [PathComponent]) { self.components = components }
    func appending(_ c: PathComponent) -> PathBox { PathBox(components + [c]) }
}

struct Node {
    var value: JSON
    var path: PathBox?
}

/// The result of a function or an operand: a value, nothing, a logical, or a node list.
private enum Evaluated {
    case value(JSON?)
    case logical(Bool)
    case nodes([Node])
}

struct Evaluator {
    let root: JSON
    let trackPaths: Bool
    /// nil: a budget of the default size for each match.
    let budget: RegexBudget?

    func run(_ query: Query, current: Node) -> [Node] {
        var nodes = [query.root == .root ? Node(value: root, path: trackPaths ? PathBox([]) : nil) : current]
        for segment in query.segments {
            var next: [Node] = []
            switch segment {
            case .child(let selectors):
                for node in nodes {
                    for selector in selectors { apply(selector, to: node, into: &next) }
                }
            case .descendant(let selectors):
                for node in nodes {
                    visitDescendants(node) { n in
                        for selector in selectors { apply(selector, to: n, into: &next) }
                    }
                }
            }
            nodes = next
        }
        return nodes
    }

    private func child(_ node: Node, _ component: PathComponent, _ value: JSON) -> Node {
        Node(value: value, path: trackPaths ? node.path?.appending(component) : nil)
    }

    private func visitDescendants(_ node: Node, _ body: (Node) -> Void) {
        body(node)
        switch node.value {
        case .array(let items):
            for (i, item) in items.enumerated() { visitDescendants(child(node, .index(i), item), body) }
        case .object(let members):
            for (k, v) in members { visitDescendants(child(node, .name(k), v), body) }
        default:
            break
        }
    }

    private func apply(_ selector: Selector, to node: Node, into out: inout [Node]) {
        switch selector {
        case .name(let name):
            if case .object(let members) = node.value, let v = members[name] {
                out.append(child(node, .name(name), v))
            }
        case .wildcard:
            switch node.value {
            case .array(let items):
                for (i, item) in items.enumerated() { out.append(child(node, .index(i), item)) }
            case .object(let members):
                for (k, v) in members { out.append(child(node, .name(k), v)) }
            default: break
            }
        case .index(let i):
            if case .array(let items) = node.value {
                let n = i < 0 ? items.count + i : i
                if n >= 0 && n < items.count { out.append(child(node, .index(n), items[n])) }
            }
        case .slice(let start, let end, let step):
            if case .array(let items) = node.value {
                for i in Self.sliceIndices(count: items.count, start: start, end: end, step: step ?? 1) {
                    out.append(child(node, .index(i), items[i]))
                }
            }
        case .filter(let expr):
            switch node.value {
            case .array(let items):
                for (i, item) in items.enumerated() {
                    let c = child(node, .index(i), item)
                    if test(expr, current: c) { out.append(c) }
                }
            case .object(let members):
                for (k, v) in members {
                    let c = child(node, .name(k), v)
                    if test(expr, current: c) { out.append(c) }
                }
            default: break
            }
        }
    }

    /// RFC 9535 2.3.4.2.2: normalise start and end against the length, then walk by step.
    static func sliceIndices(count len: Int, start: Int?, end: Int?, step: Int) -> [Int] {
        guard step != 0 else { return [] }
        func normalize(_ i: Int) -> Int { i >= 0 ? i : len + i }
        var result: [Int] = []
        if step > 0 {
            let lower = min(max(normalize(start ?? 0), 0), len)
            let upper = min(max(normalize(end ?? len), 0), len)
            var i = lower
            while i < upper {
                result.append(i)
                i += step
            }
        } else {
            let upper = min(max(normalize(start ?? len - 1), -1), len - 1)
            let lower = min(max(normalize(end ?? -len - 1), -1), len - 1)
            var i = upper
            while lower < i {
                result.append(i)
                i += step
            }
        }
        return result
    }

    // MARK: - Filters

    private func test(_ expr: LogicalExpr, current: Node) -> Bool {
        switch expr {
        case .or(let terms):
            for t in terms where test(t, current: current) { return true }
            return false
        case .and(let terms):
            for t in terms where !test(t, current: current) { return false }
            return true
        case .not(let inner):
            return !test(inner, current: current)
        case .exists(let q):
            return !run(q, current: current).isEmpty
        case .function(let call):
            switch evaluate(call, current: current) {
            case .logical(let b): return b
            case .nodes(let n): return !n.isEmpty
            case .value(let v): return v != nil
            }
        case .comparison(let l, let op, let r):
            return Self.compare(value(l, current: current), op, value(r, current: current))
        }
    }

    private func value(_ c: Comparable, current: Node) -> JSON? {
        switch c {
        case .literal(let v): return v
        case .query(let q): return run(q, current: current).first?.value
        case .function(let call):
            if case .value(let v) = evaluate(call, current: current) { return v }
            return nil
        }
    }

    static func compare(_ l: JSON?, _ op: ComparisonOp, _ r: JSON?) -> Bool {
        switch op {
        case .eq: return equal(l, r)
        case .ne: return !equal(l, r)
        case .lt: return less(l, r)
        case .le: return less(l, r) || equal(l, r)
        case .gt: return less(r, l)
        case .ge: return less(r, l) || equal(l, r)
        }
    }

    private static func equal(_ l: JSON?, _ r: JSON?) -> Bool {
        switch (l, r) {
        case (nil, nil): return true
        case (nil, _), (_, nil): return false
        case (let a?, let b?): return a == b
        }
    }

    private static func less(_ l: JSON?, _ r: JSON?) -> Bool {
        switch (l, r) {
        case (.number(let a)?, .number(let b)?): return a < b
        case (.string(let a)?, .string(let b)?):
            // Unicode scalar value order, not Swift's canonical-equivalence String order.
            return a.unicodeScalars.lexicographicallyPrecedes(b.unicodeScalars) { $0.value < $1.value }
        default: return false
        }
    }

    // MARK: - Functions

    private func evaluate(_ call: FunctionCall, current: Node) -> Evaluated {
        let parameters = Functions.signatures[call.name]?.parameters ?? []
        var args: [Evaluated] = []
        for (i, a) in call.arguments.enumerated() {
            args.append(argument(for: a, expecting: i < parameters.count ? parameters[i] : .value, current: current))
        }
        switch call.name {
        case "length":
            guard case .value(let v?) = args[0] else { return .value(nil) }
            switch v {
            case .string(let s): return .value(.number(JSONNumber(Double(s.unicodeScalars.count))))
            case .array(let a): return .value(.number(JSONNumber(Double(a.count))))
            case .object(let o): return .value(.number(JSONNumber(Double(o.count))))
            default: return .value(nil)
            }
        case "count":
            guard case .nodes(let n) = args[0] else { return .value(nil) }
            return .value(.number(JSONNumber(Double(n.count))))
        case "value":
            guard case .nodes(let n) = args[0], n.count == 1 else { return .value(nil) }
            return .value(n[0].value)
        case "match", "search":
            guard case .value(.string(let s)?) = args[0], case .value(.string(let pattern)?) = args[1] else {
                return .logical(false)
            }
            return .logical(IRegexp.matches(pattern, in: s, whole: call.name == "match", budget: budget ?? RegexBudget()))
        default:
            return .value(nil)
        }
    }

    private func argument(
        for arg: FunctionArgument, expecting type: FunctionType, current: Node
    ) -> Evaluated {
        switch arg {
        case .literal(let v): return .value(v)
        case .query(let q):
            let nodes = run(q, current: current)
            // A singular query in a ValueType position yields its value; NodesType parameters take the list.
            return type == .value ? .value(nodes.first?.value) : .nodes(nodes)
        case .logical(let expr): return .logical(test(expr, current: current))
        case .function(let call): return evaluate(call, current: current)
        }
    }
}

enum Functions {
    struct Signature {
        let parameters: [FunctionType]
        let result: FunctionType
    }

    static let signatures: [String: Signature] = [
        "length": Signature(parameters: [.value], result: .value),
        "count": Signature(parameters: [.nodes], result: .value),
        "match": Signature(parameters: [.value, .value], result: .logical),
        "search": Signature(parameters: [.value, .value], result: .logical),
        "value": Signature(parameters: [.nodes], result: .value),
    ]
}
