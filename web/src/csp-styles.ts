// xterm.js 6 writes per-terminal CSS (cell size, theme colours, scrollbar colours) into <style>
// elements, which the daemon's CSP (`style-src 'self'`, no 'unsafe-inline') blocks: even an
// empty inline <style> is a violation. Constructed stylesheets are not inline styles as far as
// CSP is concerned, so `document.createElement('style')` hands out an inert, hidden
// placeholder element instead, and whatever is written to its `textContent` goes into a
// CSSStyleSheet adopted by the document; removing the placeholder drops the sheet. The UI
// itself never creates <style> elements, so only xterm's are affected. Browsers without
// constructed stylesheets keep the default behaviour (and need 'unsafe-inline').

const supported =
  typeof CSSStyleSheet !== 'undefined' &&
  'replaceSync' in CSSStyleSheet.prototype &&
  'adoptedStyleSheets' in Document.prototype;

if (supported) {
  const create = Document.prototype.createElement;
  const patched = function (this: Document, tag: string, options?: ElementCreationOptions): HTMLElement {
    if (String(tag).toLowerCase() !== 'style') return create.call(this, tag, options);
    const doc = this;
    const el = create.call(doc, 'kaged-style');
    el.hidden = true;
    const sheet = new CSSStyleSheet();
    let text = '';
    let adopted = false;
    Object.defineProperty(el, 'textContent', {
      configurable: true,
      get: () => text,
      set: (value: string | null) => {
        text = value ?? '';
        sheet.replaceSync(text);
        if (!adopted) {
          doc.adoptedStyleSheets = [...doc.adoptedStyleSheets, sheet];
          adopted = true;
        }
      },
    });
    const remove = el.remove;
    el.remove = () => {
      if (adopted) doc.adoptedStyleSheets = doc.adoptedStyleSheets.filter((s) => s !== sheet);
      adopted = false;
      remove.call(el);
    };
    return el;
  };
  Document.prototype.createElement = patched as typeof Document.prototype.createElement;
}

export {};
