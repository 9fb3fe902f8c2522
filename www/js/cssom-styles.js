// xterm.js writes its theme, cell size and scroll bar colours as text into <style> elements
// it makes, and a 24-bit colour of the output as a span's style attribute. The panel's
// Content-Security-Policy (style-src 'self', no 'unsafe-inline') refuses both: the terminal
// would be drawn without them and every refusal is a console error. What the policy does
// allow is the CSSOM: a constructed stylesheet adopted by the document, and element.style.
//
// routeInlineStyles(document) makes the document's createElement hand out, for "style", a
// comment node whose textContent goes to a constructed stylesheet of its own (removed with
// the node), and, for "span", a span whose style attribute is set through element.style.
// Everything else is created as before. The console page calls it before it makes the
// terminal; xterm.js asks its elements of the document it is opened in.
export function routeInlineStyles(doc) {
  if (doc.__ospabInlineStyles) return;
  doc.__ospabInlineStyles = true;
  const create = doc.createElement;
  doc.createElement = function createElement(tag, options) {
    const name = String(tag).toLowerCase();
    if (name === 'style') return styleStandIn(doc);
    const el = create.call(doc, tag, options);
    if (name === 'span') {
      const setAttribute = el.setAttribute;
      el.setAttribute = function setAttr(attr, value) {
        if (String(attr).toLowerCase() === 'style') {
          el.style.cssText = String(value);
        } else {
          setAttribute.call(el, attr, value);
        }
      };
    }
    return el;
  };
}

// a node that can be appended and removed like a <style>; its text is a stylesheet's
function styleStandIn(doc) {
  const node = doc.createComment('style');
  const sheet = new (doc.defaultView || window).CSSStyleSheet();
  let text = '';
  let adopted = false;
  const adopt = () => {
    if (!adopted) {
      doc.adoptedStyleSheets = [...doc.adoptedStyleSheets, sheet];
      adopted = true;
    }
  };
  Object.defineProperty(node, 'textContent', {
    get: () => text,
    set: (v) => {
      text = v == null ? '' : String(v);
      sheet.replaceSync(text);
      adopt();
    },
  });
  const remove = node.remove;
  node.remove = function removeStandIn() {
    if (adopted) {
      doc.adoptedStyleSheets = doc.adoptedStyleSheets.filter((s) => s !== sheet);
      adopted = false;
    }
    remove.call(node);
  };
  return node;
}
