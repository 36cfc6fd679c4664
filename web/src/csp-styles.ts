// xterm.js 6 writes per-terminal CSS (cell size, theme colours, scrollbar colours) into <style>
// elements, which the daemon's CSP (`style-src 'self'`, no 'unsafe-inline') blocks. Constructed
// stylesheets are not inline styles as far as CSP is concerned, so text written into a <style>
// element's `textContent` goes into a CSSStyleSheet adopted by the document instead, and the
// element itself stays empty. The UI has no <style> elements of its own, so only xterm's are
// affected. Browsers without constructed stylesheets keep the default behaviour.

const supported =
  typeof CSSStyleSheet !== 'undefined' &&
  'replaceSync' in CSSStyleSheet.prototype &&
  'adoptedStyleSheets' in Document.prototype;

if (supported) {
  const sheets = new WeakMap<HTMLStyleElement, { sheet: CSSStyleSheet; text: string }>();
  const proto = HTMLStyleElement.prototype;
  const detach = (el: HTMLStyleElement) => {
    const entry = sheets.get(el);
    if (entry) document.adoptedStyleSheets = document.adoptedStyleSheets.filter((s) => s !== entry.sheet);
    sheets.delete(el);
  };
  Object.defineProperty(proto, 'textContent', {
    configurable: true,
    enumerable: true,
    get(this: HTMLStyleElement) {
      return sheets.get(this)?.text ?? '';
    },
    set(this: HTMLStyleElement, value: string | null) {
      let entry = sheets.get(this);
      if (!entry) {
        entry = { sheet: new CSSStyleSheet(), text: '' };
        sheets.set(this, entry);
        document.adoptedStyleSheets = [...document.adoptedStyleSheets, entry.sheet];
      }
      entry.text = value ?? '';
      entry.sheet.replaceSync(entry.text);
    },
  });
  const remove = proto.remove;
  proto.remove = function (this: HTMLStyleElement) {
    detach(this);
    remove.call(this);
  };
}

export {};
