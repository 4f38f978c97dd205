// Code editor for strategy uploads: every <textarea data-code="python|json"> becomes a CodeMirror 6
// editor (syntax highlighting, line numbers, bracket matching, search) that writes back into the
// textarea, so the form posts exactly as without JavaScript. A refused upload's problems (the
// json_script #upload-issues: {field: [{line, col, message, code}]}) are shown at their line.
// Bundled by esbuild into static/build/editor.js; loaded by the upload page only.
import { basicSetup, EditorView } from "codemirror";
import { python } from "@codemirror/lang-python";
import { json } from "@codemirror/lang-json";
import { lintGutter, setDiagnostics } from "@codemirror/lint";
import { indentUnit } from "@codemirror/language";

function issuesByField() {
  const script = document.getElementById("upload-issues");
  if (!script) return {};
  try {
    return JSON.parse(script.textContent) || {};
  } catch {
    return {};
  }
}

function diagnostics(doc, issues) {
  return issues
    .filter((issue) => issue.line && issue.line >= 1 && issue.line <= doc.lines)
    .map((issue) => {
      const line = doc.line(issue.line);
      // From the column to the end of the line; the whole line when the column is at its end
      // (a missing ':' is reported after the last character).
      let from = Math.min(line.from + Math.max(0, (issue.col || 1) - 1), line.to);
      if (from >= line.to) from = line.from;
      return {
        from,
        to: line.to,
        severity: "error",
        message: `${issue.code ? `[${issue.code}] ` : ""}${issue.message}`,
      };
    });
}

function enhance(textarea, issues) {
  if (textarea.dataset.editorReady) return;
  textarea.dataset.editorReady = "1";
  const language = textarea.dataset.code === "json" ? json() : python();
  const view = new EditorView({
    doc: textarea.value,
    extensions: [
      basicSetup,
      language,
      indentUnit.of("    "),
      lintGutter(),
      EditorView.lineWrapping,
      EditorView.updateListener.of((update) => {
        if (update.docChanged) textarea.value = update.state.doc.toString();
      }),
      EditorView.contentAttributes.of({ "aria-multiline": "true", spellcheck: "false" }),
    ],
  });
  // The label now names the editor (a contenteditable is not "labelable": aria-labelledby), and the
  // hidden textarea only carries the value.
  const label = textarea.id ? document.querySelector(`label[for="${textarea.id}"]`) : null;
  view.contentDOM.id = `${textarea.id || textarea.name}-editor`;
  if (label) {
    label.id = label.id || `${view.contentDOM.id}-label`;
    label.removeAttribute("for");
    label.addEventListener("click", () => view.focus());
    view.contentDOM.setAttribute("aria-labelledby", label.id);
  }
  const describedBy = textarea.getAttribute("aria-describedby");
  if (describedBy) view.contentDOM.setAttribute("aria-describedby", describedBy);
  view.dom.classList.add("code-editor");
  view.dom.dataset.editorFor = textarea.name;
  textarea.hidden = true;
  textarea.after(view.dom);
  textarea.form?.addEventListener("reset", () => view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: "" } }));
  if (issues && issues.length) {
    view.dispatch(setDiagnostics(view.state, diagnostics(view.state.doc, issues)));
  }
  textarea._editor = view;
  return view;
}

function init(root) {
  const issues = issuesByField();
  root.querySelectorAll("textarea[data-code]").forEach((textarea) => enhance(textarea, issues[textarea.name] || []));
  // The error list's "line N" links jump to the line in the editor.
  root.querySelectorAll("[data-goto-line][data-field]").forEach((link) => {
    link.addEventListener("click", (event) => {
      const textarea = document.querySelector(`textarea[name="${link.dataset.field}"]`);
      const view = textarea && textarea._editor;
      if (!view) return;
      event.preventDefault();
      event.stopImmediatePropagation();
      const line = view.state.doc.line(Math.min(Number(link.dataset.line) || 1, view.state.doc.lines));
      view.dispatch({ selection: { anchor: line.from }, scrollIntoView: true });
      view.focus();
    }, true);
  });
}

window.StratboxEditor = { enhance };
document.addEventListener("DOMContentLoaded", () => init(document));
