// One file (about 500 lines), on purpose: the parser is one grammar (RFC 9535's ABNF, rule by rule, in
// its order), and its functions call each other recursively over one private cursor.

/// A recursive-descent parser for RFC 9535, over Unicode scalars, with the function well-typedness
/// rules of section 2.4.3 checked at parse time (an ill-typed query is invalid, not merely empty).
struct JSONPathParser {
    private let scalars: [Unicode.Scalar]
    private var pos = 0
    private let source: String

    init(_ source: String) {
        self.source = source
        self.scalars = Array(source.unicodeScalars)
    }

    static let maxSafeInteger = 9_007_199_254_740_991

    mutating func parseQuery() throws(JSONPathError) -> Query {
        guard peek == "$" else { throw error("a query starts with '$'") }
        pos += 1
        let segments = try parseSegments()
        if pos < scalars.count { throw error("unexpected '\(Character(scalars[pos]))'") }
        return Query(root: .root, segments: segments)
    }

    // MARK: - Lexical helpers

    private var peek: Unicode.Scalar? { pos < scalars.count ? scalars[pos] : nil }

    private func peek(at offset: Int) -> Unicode.Scalar? {
        pos + offset < scalars.count ? scalars[pos + offset] : nil
    }

    private func error(_ message: String) -> JSONPathError {
        JSONPathError(query: source, offset: pos, message: message)
    }

    private static func isBlank(_ c: Unicode.Scalar) -> Bool {
        c == " " || c == "\t" || c == "\n" || c == "\r"
    }

    private mutating func skipBlanks() {
        while let c = peek, Self.isBlank(c) { pos += 1 }
    }

    private mutating func expect(_ c: Unicode.Scalar) throws(JSONPathError) {
        guard peek == c else { throw error("expected '\(Character(c))'") }
        pos += 1
    }

    private mutating func consume(_ text: String) -> Bool {
        let wanted = Array(text.unicodeScalars)
        guard pos + wanted.count <= scalars.count, Array(scalars[pos..<pos + wanted.count]) == wanted else {
            return false
        }
        pos += wanted.count
        return true
    }

    private static func isDigit(_ c: Unicode.Scalar?) -> Bool {
        guard let c else { return false }
        return c >= "0" && c <= "9"
    }

    private static func isAlpha(_ c: Unicode.Scalar) -> Bool {
        (c >= "a" && c <= "z") || (c >= "A" && c <= "Z")
    }

    private static func isNameFirst(_ c: Unicode.Scalar) -> Bool {
        isAlpha(c) || c == "_" || (c.value >= 0x80 && c.value <= 0xD7FF) || (c.value >= 0xE000 && c.value <= 0x10FFFF)
    }

    // MARK: - Segments

    private mutating func parseSegments() throws(JSONPathError) -> [Segment] {
        var segments: [Segment] = []
        while true {
            let save = pos
            skipBlanks()
            guard let c = peek else {
                pos = save
                return segments
            }
            if c == "[" {
                segments.append(.child(try parseBracketed()))
            } else if c == "." {
                if peek(at: 1) == "." {
                    pos += 2
                    if peek == "[" {
                        segments.append(.descendant(try parseBracketed()))
                    } else if peek == "*" {
                        pos += 1
                        segments.append(.descendant([.wildcard]))
                    } else {
                        segments.append(.descendant([.name(try parseMemberName())]))
                    }
                } else {
                    pos += 1
                    if peek == "*" {
                        pos += 1
                        segments.append(.child([.wildcard]))
                    } else {
                        segments.append(.child([.name(try parseMemberName())]))
                    }
                }
            } else {
                pos = save
                return segments
            }
        }
    }

    private mutating func parseMemberName() throws(JSONPathError) -> String {
        guard let first = peek, Self.isNameFirst(first) else { throw error("expected a member name") }
        var name = String.UnicodeScalarView()
        while let c = peek, Self.isNameFirst(c) || Self.isDigit(c) {
            name.append(c)
            pos += 1
        }
        return String(name)
    }

    private mutating func parseBracketed() throws(JSONPathError) -> [Selector] {
        try expect("[")
        var selectors: [Selector] = []
        skipBlanks()
        selectors.append(try parseSelector())
        skipBlanks()
        while peek == "," {
            pos += 1
            skipBlanks()
            selectors.append(try parseSelector())
            skipBlanks()
        }
        try expect("]")
        return selectors
    }

    private mutating func parseSelector() throws(JSONPathError) -> Selector {
        guard let c = peek else { throw error("expected a selector") }
        switch c {
        case "'", "\"":
            return .name(try parseStringLiteral())
        case "*":
            pos += 1
            return .wildcard
        case "?":
            pos += 1
            skipBlanks()
            return .filter(try parseLogicalOr())
        default:
            return try parseIndexOrSlice()
        }
    }

    private mutating func parseIndexOrSlice() throws(JSONPathError) -> Selector {
        var start: Int? = nil
        if peek == "-" || Self.isDigit(peek) { start = try parseInteger() }
        skipBlanks()
        guard peek == ":" else {
            guard let start else { throw error("expected a selector") }
            return .index(start)
        }
        pos += 1
        skipBlanks()
        var end: Int? = nil
        if peek == "-" || Self.isDigit(peek) {
            end = try parseInteger()
            skipBlanks()
        }
        var step: Int? = nil
        if peek == ":" {
            pos += 1
            skipBlanks()
            if peek == "-" || Self.isDigit(peek) { step = try parseInteger() }
        }
        return .slice(start: start, end: end, step: step)
    }

    /// int = "0" / (["-"] DIGIT1 *DIGIT), within the I-JSON exact range.
    private mutating func parseInteger() throws(JSONPathError) -> Int {
        let begin = pos
        var negative = false
        if peek == "-" {
            negative = true
            pos += 1
        }
        guard Self.isDigit(peek) else { throw error("expected a digit") }
        if peek == "0" {
            pos += 1
            if negative { throw error("'-0' is not an integer here") }
            if Self.isDigit(peek) { throw error("leading zeros are not allowed") }
            return 0
        }
        var value = 0
        while let c = peek, Self.isDigit(c) {
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(Int(c.value - 48))
            if o1 || o2 || a > Self.maxSafeInteger {
                pos = begin
                throw error("integer out of range")
            }
            value = a
            pos += 1
        }
        return negative ? -value : value
    }

    // MARK: - String literals

    private mutating func parseStringLiteral() throws(JSONPathError) -> String {
        guard let quote = peek, quote == "'" || quote == "\"" else { throw error("expected a string") }
        pos += 1
        var out = String.UnicodeScalarView()
        while true {
            guard let c = peek else { throw error("unterminated string") }
            pos += 1
            if c == quote { return String(out) }
            if c == "\\" {
                guard let e = peek else { throw error("unterminated escape") }
                pos += 1
                switch e {
                case "b": out.append("\u{08}")
                case "f": out.append("\u{0C}")
                case "n": out.append("\n")
                case "r": out.append("\r")
                case "t": out.append("\t")
                case "/": out.append("/")
                case "\\": out.append("\\")
                case "'" where quote == "'": out.append("'")
                case "\"" where quote == "\"": out.append("\"")
                case "u": out.append(try parseUnicodeEscape())
                default: throw error("invalid escape '\\\(Character(e))'")
                }
            } else if c.value < 0x20 {
                throw error("control character in string")
            } else {
                out.append(c)
            }
        }
    }

    private mutating func parseHex4() throws(JSONPathError) -> UInt32 {
        var v: UInt32 = 0
        for _ in 0..<4 {
            guard let c = peek, let d = Character(c).hexDigitValue else { throw error("expected 4 hex digits") }
            v = v * 16 + UInt32(d)
            pos += 1
        }
        return v
    }

    private mutating func parseUnicodeEscape() throws(JSONPathError) -> Unicode.Scalar {
        let first = try parseHex4()
        if (0xDC00...0xDFFF).contains(first) { throw error("lone low surrogate") }
        if (0xD800...0xDBFF).contains(first) {
            guard consume("\\u") else { throw error("high surrogate without a low surrogate") }
            let second = try parseHex4()
            guard (0xDC00...0xDFFF).contains(second) else { throw error("high surrogate without a low surrogate") }
            let combined = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            guard let s = Unicode.Scalar(combined) else { throw error("invalid surrogate pair") }
            return s
        }
        guard let s = Unicode.Scalar(first) else { throw error("invalid code point") }
        return s
    }

    // MARK: - Filter expressions

    private mutating func parseLogicalOr() throws(JSONPathError) -> LogicalExpr {
        var terms = [try parseLogicalAnd()]
        while true {
            let save = pos
            skipBlanks()
            if consume("||") {
                skipBlanks()
                terms.append(try parseLogicalAnd())
            } else {
                pos = save
                break
            }
        }
        return terms.count == 1 ? terms[0] : .or(terms)
    }

    private mutating func parseLogicalAnd() throws(JSONPathError) -> LogicalExpr {
        var terms = [try parseBasic()]
        while true {
            let save = pos
            skipBlanks()
            if consume("&&") {
                skipBlanks()
                terms.append(try parseBasic())
            } else {
                pos = save
                break
            }
        }
        return terms.count == 1 ? terms[0] : .and(terms)
    }

    private mutating func parseBasic() throws(JSONPathError) -> LogicalExpr {
        if peek == "!" {
            pos += 1
            skipBlanks()
            if peek == "(" {
                return .not(try parseParen())
            }
            return .not(try parseTest(negated: true))
        }
        if peek == "(" { return try parseParen() }
        // A comparison or a test expression: parse the left operand, then look for an operator.
        let begin = pos
        let left = try parseOperand()
        let save = pos
        skipBlanks()
        if let op = parseComparisonOp() {
            skipBlanks()
            let right = try parseOperand()
            return .comparison(try comparable(left, at: begin), op, try comparable(right, at: save))
        }
        pos = save
        switch left {
        case .query(let q): return .exists(q)
        case .function(let f, let type):
            guard type != .value else {
                pos = begin
                throw error("function '\(f.name)' returns a value, which must be compared")
            }
            return .function(f)
        case .literal:
            pos = begin
            throw error("a literal alone is not a test; compare it")
        }
    }

    private mutating func parseParen() throws(JSONPathError) -> LogicalExpr {
        try expect("(")
        skipBlanks()
        let inner = try parseLogicalOr()
        skipBlanks()
        try expect(")")
        return inner
    }

    private mutating func parseTest(negated: Bool) throws(JSONPathError) -> LogicalExpr {
        let begin = pos
        switch try parseOperand() {
        case .query(let q): return .exists(q)
        case .function(let f, let type) where type != .value: return .function(f)
        default:
            pos = begin
            throw error("'!' must be followed by a query, a logical function or a parenthesised expression")
        }
    }

    private mutating func parseComparisonOp() -> ComparisonOp? {
        for op in ["==", "!=", "<=", ">=", "<", ">"] where consume(op) {
            return ComparisonOp(rawValue: op)
        }
        return nil
    }

    private enum Operand {
        case literal(JSON)
        case query(Query)
        case function(FunctionCall, FunctionType)
    }

    private func comparable(_ operand: Operand, at offset: Int) throws(JSONPathError) -> Comparable {
        switch operand {
        case .literal(let v): return .literal(v)
        case .query(let q):
            guard q.isSingular else {
                throw JSONPathError(query: source, offset: offset, message: "only a singular query can be compared")
            }
            return .query(q)
        case .function(let f, let type):
            guard type == .value else {
                throw JSONPathError(
                    query: source, offset: offset, message: "function '\(f.name)' does not return a comparable value")
            }
            return .function(f)
        }
    }

    private mutating func parseOperand() throws(JSONPathError) -> Operand {
        guard let c = peek else { throw error("expected an expression") }
        switch c {
        case "@", "$":
            pos += 1
            return .query(Query(root: c == "@" ? .current : .root, segments: try parseSegments()))
        case "'", "\"":
            return .literal(.string(try parseStringLiteral()))
        case "-", "0"..."9":
            return .literal(.number(JSONNumber(try parseNumber())))
        default:
            if consume("true") { return try literalKeyword(.bool(true)) }
            if consume("false") { return try literalKeyword(.bool(false)) }
            if consume("null") { return try literalKeyword(.null) }
            if c >= "a" && c <= "z" {
                let (call, type) = try parseFunction()
                return .function(call, type)
            }
            throw error("expected an expression")
        }
    }

    private mutating func literalKeyword(_ value: JSON) throws(JSONPathError) -> Operand {
        if let c = peek, Self.isAlpha(c) || Self.isDigit(c) || c == "_" || c == "(" {
            throw error("unknown name")
        }
        return .literal(value)
    }

    /// number = (int / "-0") [ frac ] [ exp ]
    private mutating func parseNumber() throws(JSONPathError) -> Double {
        let begin = pos
        if peek == "-" { pos += 1 }
        guard Self.isDigit(peek) else { throw error("expected a number") }
        if peek == "0" {
            pos += 1
            if Self.isDigit(peek) { throw error("leading zeros are not allowed") }
        } else {
            while Self.isDigit(peek) { pos += 1 }
        }
        if peek == "." {
            pos += 1
            guard Self.isDigit(peek) else { throw error("expected digits after '.'") }
            while Self.isDigit(peek) { pos += 1 }
        }
        if peek == "e" || peek == "E" {
            pos += 1
            if peek == "+" || peek == "-" { pos += 1 }
            guard Self.isDigit(peek) else { throw error("expected digits in the exponent") }
            while Self.isDigit(peek) { pos += 1 }
        }
        var text = String.UnicodeScalarView()
        text.append(contentsOf: scalars[begin..<pos])
        guard let value = Double(String(text)) else { throw error("invalid number") }
        return value
    }

    private mutating func parseFunction() throws(JSONPathError) -> (FunctionCall, FunctionType) {
        let begin = pos
        var name = String.UnicodeScalarView()
        while let c = peek, (c >= "a" && c <= "z") || c == "_" || Self.isDigit(c) {
            name.append(c)
            pos += 1
        }
        let fname = String(name)
        guard let signature = Functions.signatures[fname] else {
            pos = begin
            throw error("unknown function '\(fname)'")
        }
        guard peek == "(" else { throw error("expected '(' after '\(fname)'") }
        pos += 1
        skipBlanks()
        var args: [FunctionArgument] = []
        if peek != ")" {
            args.append(try parseArgument(signature.parameters, index: 0, function: fname))
            skipBlanks()
            while peek == "," {
                pos += 1
                skipBlanks()
                args.append(try parseArgument(signature.parameters, index: args.count, function: fname))
                skipBlanks()
            }
        }
        try expect(")")
        guard args.count == signature.parameters.count else {
            pos = begin
            throw error("function '\(fname)' takes \(signature.parameters.count) argument(s), not \(args.count)")
        }
        return (FunctionCall(name: fname, arguments: args), signature.result)
    }

    private mutating func parseArgument(
        _ parameters: [FunctionType], index: Int, function: String
    ) throws(JSONPathError) -> FunctionArgument {
        guard index < parameters.count else { throw error("too many arguments to '\(function)'") }
        let expected = parameters[index]
        let begin = pos
        // A logical expression argument may be a comparison or a combination; try it when a LogicalType is expected.
        if expected == .logical {
            let expr = try parseLogicalOr()
            return .logical(expr)
        }
        let operand = try parseOperand()
        // An argument is followed by ',' or ')'; anything else (an operator) makes it a logical expression.
        let save = pos
        skipBlanks()
        if let c = peek, c != ",", c != ")" {
            throw error("expected ',' or ')' in the arguments of '\(function)'")
        }
        pos = save
        switch (operand, expected) {
        case (.literal(let v), .value):
            return .literal(v)
        case (.query(let q), .value):
            guard q.isSingular else {
                pos = begin
                throw error("argument \(index + 1) of '\(function)' must be a singular query")
            }
            return .query(q)
        case (.query(let q), .nodes):
            return .query(q)
        case (.function(let f, .value), .value), (.function(let f, .nodes), .nodes):
            return .function(f)
        default:
            pos = begin
            throw error("argument \(index + 1) of '\(function)' has the wrong type")
        }
    }
}

/// A query that RFC 9535 rejects, with where and why.
public struct JSONPathError: Error, CustomStringConvertible, Sendable, Equatable {
    public let query: String
    public let offset: Int
    public let message: String
    public var description: String { "invalid JSONPath \(query.debugDescription) at offset \(offset): \(message)" }
}
