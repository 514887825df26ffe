// QService's bridge to the vendored @huggingface/jinja (vendor/huggingface-jinja.cjs), run by Jint.
// It brings the library to Python Jinja as transformers' apply_chat_template runs it; each shim says why
// (the README's "Chat templates" lists them). The library itself is left byte for byte as published.
// Needs from the host: `module` (the library's CommonJS exports) and `__qsStrftime(format)` (Python strftime on
// the host's clock).
var qs = (function (jinja) {
  "use strict";
  const { Environment, Template } = jinja;

  // Shim: a render variable shadows a global of the same name, as in Jinja (transformers passes strftime_now
  // that way, and callers' kwargs may reuse any name); the library refuses to declare a name twice.
  const declare = Environment.prototype.set;
  Environment.prototype.set = function (name, value) {
    this.variables.delete(name);
    return declare.call(this, name, value);
  };

  // The library's value classes are not exported: take them from values it makes.
  const probe = new Environment();
  probe.set("s", "");
  probe.set("f", () => null);
  const StringValue = probe.variables.get("s").constructor;
  const FunctionValue = probe.variables.get("f").constructor;

  // Shim: Python's str.strip/lstrip/rstrip. The library ignores the characters argument (SmolLM3's
  // content.lstrip("\n") must keep leading spaces) and strips JavaScript's whitespace, not Python's.
  const pythonSpace = "\t\n\v\f\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" +
    "\u2028\u2029\u202f\u205f\u3000";
  function pythonStrip(text, chars, left, right) {
    const set = new Set(chars === null ? pythonSpace : chars);
    const points = Array.from(text);
    let start = 0, end = points.length;
    if (left) while (start < end && set.has(points[start])) start++;
    if (right) while (end > start && set.has(points[end - 1])) end--;
    return points.slice(start, end).join("");
  }
  function stripMethod(text, left, right) {
    return new FunctionValue((args) => {
      const chars = args.length > 0 ? args[0] : null;
      if (chars !== null && chars.type !== "NullValue" && chars.type !== "StringValue")
        throw new Error("strip arg must be None or str");
      return new StringValue(pythonStrip(text, chars === null || chars.type === "NullValue" ? null : chars.value, left, right));
    });
  }
  const builtins = Object.getOwnPropertyDescriptor(StringValue.prototype, "builtins").get;
  Object.defineProperty(StringValue.prototype, "builtins", {
    configurable: true,
    get() {
      const map = builtins.call(this);
      if (!map.has("__qs")) {
        map.set("strip", stripMethod(this.value, true, true));
        map.set("lstrip", stripMethod(this.value, true, false));
        map.set("rstrip", stripMethod(this.value, false, true));
        map.set("__qs", null);
      }
      return map;
    },
  });

  // A raise_exception call, told apart from the engine's own errors (a template's refusal is the caller's to fix).
  class TemplateRaised {
    constructor(message) { this.message = message; }
  }

  let template = null;
  return {
    // Parses the template once per engine; throws the library's message when it cannot.
    parse(source) { template = new Template(source); },
    // Renders with the variables given as JSON; returns [kind, text]: ["ok", rendered], ["raised", message] or ["error", message].
    render(variablesJson) {
      const variables = JSON.parse(variablesJson);
      // Shim: strftime_now as Python's strftime on the host's clock (the library knows only %Y %m %d %b %B %H %M).
      variables.strftime_now = (format) => __qsStrftime(String(format));
      variables.raise_exception = (message) => { throw new TemplateRaised(String(message)); };
      try {
        return ["ok", template.render(variables)];
      } catch (e) {
        if (e instanceof TemplateRaised) return ["raised", e.message];
        return ["error", String(e && e.message !== undefined ? e.message : e)];
      }
    },
  };
})(module.exports);
