"""The grammar of the SpEL subset, parsed by lark (LALR), and the translation of lark's errors."""

import lark

from .errors import ExpressionError

# Precedence as in SpEL, lowest first: ternary and elvis, ||, &&, relational (non-associative),
# additive, multiplicative, unary, postfix (member, index, call).
GRAMMAR = r"""
start: expr

?expr: or_expr
     | or_expr "?" expr ":" expr      -> ternary
     | or_expr "?:" expr              -> elvis

?or_expr: and_expr
        | or_expr OR and_expr         -> or_
?and_expr: rel_expr
         | and_expr AND rel_expr      -> and_
?rel_expr: add_expr
         | add_expr REL add_expr      -> compare
?add_expr: mul_expr
         | add_expr PLUS mul_expr     -> arith
         | add_expr MINUS mul_expr    -> arith
?mul_expr: unary
         | mul_expr MUL_OP unary      -> arith
?unary: postfix
      | NOT unary                     -> not_
      | MINUS unary                   -> neg
      | PLUS unary                    -> pos

?postfix: primary
        | postfix "." NAME                      -> prop
        | postfix "?." NAME                     -> safe_prop
        | postfix "." NAME "(" args ")"         -> method
        | postfix "?." NAME "(" args ")"        -> safe_method
        | postfix "[" expr "]"                  -> index

?primary: VAR                         -> var
        | VAR "(" args ")"            -> func
        | SQ_STRING                   -> sq_string
        | DQ_STRING                   -> dq_string
        | DECIMAL                     -> decimal
        | INT                         -> integer
        | TRUE                        -> true
        | FALSE                       -> false
        | NULL                        -> null
        | "(" expr ")"

args: (arg ("," arg)*)?
?arg: expr
    | or_expr SECRET_OPTIONS          -> with_options

OR: "||" | "or"i
AND: "&&" | "and"i
NOT: "!" | "not"i
REL: /==|!=|<=|>=|<|>|(?:eq|ne|lt|le|gt|ge|matches)(?![\w$])/i
PLUS: "+"
MINUS: "-"
MUL_OP: "*" | "/" | "%"
TRUE: /true(?![\w$])/i
FALSE: /false(?![\w$])/i
NULL: /null(?![\w$])/i
VAR: /#[A-Za-z_$][\w$]*/
NAME: /[A-Za-z_$][\w$]*/
SQ_STRING: /'(?:[^']|'')*'/
DQ_STRING: /"(?:[^"]|"")*"/
DECIMAL.2: /\d+\.\d+(?:[eE][+-]?\d+)?[dDfF]?|\d+[eE][+-]?\d+[dDfF]?|\d+[dDfF]/
INT: /0[xX][0-9a-fA-F]+[lL]?|\d+[lL]?/
// Gravitee's secret references take options after the reference, e.g.
// #secrets.get(#api.properties['x']?reloadOnChange=true): not SpEL, but definitions hold it.
SECRET_OPTIONS: /\?[A-Za-z_]\w*=[^\s)&,=]+(?:&[A-Za-z_]\w*=[^\s)&,=]+)*/

%ignore /\s+/
"""

PARSER = lark.Lark(GRAMMAR, parser="lalr", lexer="contextual")


def describe(token):
    if token.type == "$END":
        return "unexpected end of expression"
    return f"unexpected {token.value!r}"


def parse(expression, offset):
    """The tree of `expression`; `offset` is where it starts in the whole text (0-based)."""
    try:
        return PARSER.parse(expression)
    except lark.UnexpectedToken as error:
        if error.token.type == "$END":
            raise ExpressionError(offset + len(expression.rstrip()) + 1, describe(error.token)) from None
        raise ExpressionError(offset + error.token.start_pos + 1, describe(error.token)) from None
    except lark.UnexpectedCharacters as error:
        char = expression[error.pos_in_stream]
        reason = "unterminated string" if char in "'\"" else f"unexpected character {char!r}"
        raise ExpressionError(offset + error.pos_in_stream + 1, reason) from None
    except lark.UnexpectedEOF:
        raise ExpressionError(offset + len(expression.rstrip()) + 1, "unexpected end of expression") from None
