// The merchant onboarding portal: consent checkboxes and the policy come from the API (data,
// not code), the form posts to POST /api/v1/onboarding/merchants, and problem+json errors are
// shown next to the fields they name. Text is set with textContent only, never as HTML.
"use strict";

const TEXT = {
  id: {
    title: "Daftarkan toko Anda", intro: "Buka toko di Warung dalam satu menit.",
    shop: "Toko", business_name: "Nama usaha", slug: "Alamat toko",
    slug_hint: "Huruf kecil, angka dan tanda hubung, mis. toko-budi.", locale: "Bahasa",
    country: "Negara (kode dua huruf)", owner: "Pemilik", full_name: "Nama lengkap",
    email: "Email", phone: "Telepon (opsional)", password: "Kata sandi",
    password_hint: "12 sampai 128 karakter.", consents: "Persetujuan",
    required: "wajib", policy: "Kebijakan privasi, versi", submit: "Daftar",
    created: "Toko {slug} sudah dibuat. Periksa email Anda untuk memverifikasi alamatnya, lalu masuk.",
    failed: "Pendaftaran gagal:", unavailable: "Layanan sedang tidak tersedia. Coba lagi nanti.",
  },
  en: {
    title: "Register your shop", intro: "Open your shop on Warung in a minute.",
    shop: "Shop", business_name: "Business name", slug: "Shop address",
    slug_hint: "Lowercase letters, digits and dashes, e.g. toko-budi.", locale: "Language",
    country: "Country (two-letter code)", owner: "Owner", full_name: "Full name",
    email: "Email", phone: "Phone (optional)", password: "Password",
    password_hint: "12 to 128 characters.", consents: "Consent",
    required: "required", policy: "Privacy policy, version", submit: "Sign up",
    created: "Shop {slug} is ready. Check your email to verify your address, then sign in.",
    failed: "Sign-up failed:", unavailable: "The service is unavailable. Try again later.",
  },
};

// The pages mailed links open. The token travels in the URL fragment
// (`#/verify-email?token=...`), which a browser never sends to a server, so it cannot land in
// an access log or a Referer header.
const LINK_TEXT = {
  id: {
    "verify-email": "Verifikasi email", "reset-password": "Atur ulang kata sandi",
    "accept-invitation": "Terima undangan", new_password: "Kata sandi baru",
    verifying: "Memverifikasi…", verified: "Email Anda sudah terverifikasi. Silakan masuk.",
    reset: "Kata sandi diganti. Semua sesi lama telah diakhiri; silakan masuk lagi.",
    accepted: "Akun Anda sudah siap. Silakan masuk.", save: "Simpan",
    privacy: "Data pribadi Anda", privacy_intro: "Pelanggan toko di Warung dapat meminta salinan data mereka, perbaikan, pembatasan, penarikan persetujuan, atau penghapusan. Kami mengirim tautan konfirmasi ke email Anda; tidak ada yang diproses sebelum Anda mengonfirmasi.",
    privacy_link: "Belanja di toko Warung? Minta data Anda", shop_slug: "Alamat toko (mis. toko-budi)",
    request_type: "Permintaan", send: "Kirim permintaan",
    types: { access: "Salinan data saya", export: "Data saya dalam format mesin (JSON, CSV)",
      rectification: "Perbaiki data saya", restriction: "Batasi pemrosesan data saya",
      withdrawal: "Tarik semua persetujuan opsional", erasure: "Hapus data saya" },
    filed: "Jika alamat ini milik pelanggan toko tersebut, email dengan tautan konfirmasi sedang dikirim.",
    "privacy/confirm": "Konfirmasi permintaan data pribadi",
    "privacy/download": "Unduh data Anda",
    "consent/confirm": "Konfirmasi kabar dari toko",
    consent_intro: "Toko mencatat bahwa Anda ingin menerima kabar dan penawarannya lewat email. Tekan tombol jika Anda memang menginginkannya; tanpa konfirmasi Anda, tidak ada yang dikirim.",
    consent_confirm: "Ya, kirimi saya kabar", consent_done: "Terkonfirmasi. Anda dapat menariknya kapan saja.",
    confirm_intro: "Tekan tombol untuk mengonfirmasi bahwa Anda yang mengajukan permintaan ini. Tautan hanya berlaku sekali.",
    confirm: "Konfirmasi permintaan", download: "Unduh (zip: JSON dan CSV)",
    download_intro: "Salinan data Anda siap. Tautan hanya berlaku sekali: simpan berkasnya.",
    downloaded: "Unduhan dimulai: my-data.zip.",
    outcome: {
      exported: "Terkonfirmasi. Tautan unduhan data Anda dikirim lewat email.",
      withdrawn: "Terkonfirmasi. Semua persetujuan opsional Anda telah ditarik.",
      restricted: "Terkonfirmasi. Data Anda disimpan tetapi tidak lagi diproses.",
      scheduled: "Terkonfirmasi. Penghapusan dijadwalkan pada {at}; Anda akan menerima email saat selesai.",
      in_progress: "Terkonfirmasi. Toko akan memperbaiki data Anda paling lambat {due}.",
    },
  },
  en: {
    "verify-email": "Verify email", "reset-password": "Reset password",
    "accept-invitation": "Accept invitation", new_password: "New password",
    verifying: "Verifying…", verified: "Your email is verified. You can sign in.",
    reset: "Password changed. Every earlier session has ended; sign in again.",
    accepted: "Your account is ready. You can sign in.", save: "Save",
    privacy: "Your personal data", privacy_intro: "Customers of shops on Warung can ask for a copy of their data, a correction, a restriction, the withdrawal of their consent, or erasure. We mail a confirmation link to your address; nothing is processed before you confirm.",
    privacy_link: "Shopping at a Warung shop? Ask for your data", shop_slug: "Shop address (e.g. toko-budi)",
    request_type: "Request", send: "Send the request",
    types: { access: "A copy of my data", export: "My data in machine-readable form (JSON, CSV)",
      rectification: "Correct my data", restriction: "Restrict the processing of my data",
      withdrawal: "Withdraw every optional consent", erasure: "Erase my data" },
    filed: "If this address belongs to a customer of that shop, a mail with a confirmation link is on its way.",
    "privacy/confirm": "Confirm your personal data request",
    "privacy/download": "Download your data",
    "consent/confirm": "Confirm news from the shop",
    consent_intro: "The shop noted that you would like its news and offers by email. Press the button if you do; without your confirmation nothing is sent.",
    consent_confirm: "Yes, send me news", consent_done: "Confirmed. You can withdraw it at any time.",
    confirm_intro: "Press the button to confirm that you made this request. The link works once.",
    confirm: "Confirm the request", download: "Download (zip: JSON and CSV)",
    download_intro: "The copy of your data is ready. The link works once: keep the file.",
    downloaded: "Your download has started: my-data.zip.",
    outcome: {
      exported: "Confirmed. The link to download your data is on its way by email.",
      withdrawn: "Confirmed. Every optional consent of yours is withdrawn.",
      restricted: "Confirmed. Your data is kept but no longer processed.",
      scheduled: "Confirmed. Erasure is scheduled for {at}; you will get a mail when it is done.",
      in_progress: "Confirmed. The shop will correct your data by {due} at the latest.",
    },
  },
};

function linkRoute() {
  const match = /^#\/(verify-email|reset-password|accept-invitation|privacy\/confirm|privacy\/download|consent\/confirm)\?token=([^&]+)$/.exec(location.hash);
  return match && { page: match[1], token: decodeURIComponent(match[2]) };
}

let lang = navigator.language && navigator.language.startsWith("en") ? "en" : "id";
const form = document.getElementById("signup");
const result = document.getElementById("result");

async function getJson(path) {
  const response = await fetch(path, { headers: { accept: "application/json" } });
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

async function post(path, payload) {
  return fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify(payload),
  });
}

async function linkOutcome(response, okText) {
  const box = document.getElementById("link-result");
  if (response.ok) {
    document.getElementById("link-form").hidden = true;
    box.className = "ok";
    box.replaceChildren(el("p", { text: okText }));
    return;
  }
  const problem = await response.json().catch(() => ({}));
  box.className = "error";
  box.replaceChildren(el("p", { text: `${TEXT[lang].failed} ${problem.detail || problem.title || response.status}` }),
    ...(problem.errors || []).map((e) => el("p", { class: "field-error", text: `${e.field}: ${e.message}` })));
}

async function renderLink(route) {
  const t = { ...TEXT[lang], ...LINK_TEXT[lang] };
  document.documentElement.lang = lang;
  document.title = `Warung · ${t[route.page]}`;
  for (const node of document.querySelectorAll("[data-t]")) node.textContent = t[node.dataset.t];
  form.hidden = true;
  document.querySelector("[data-t=intro]").hidden = true;
  document.getElementById("privacy-link").hidden = true;
  document.getElementById("link").hidden = false;
  document.getElementById("link-title").textContent = t[route.page];
  const linkForm = document.getElementById("link-form");
  if (route.page === "verify-email") {
    linkForm.hidden = true;
    document.getElementById("link-result").replaceChildren(el("p", { text: t.verifying }));
    try {
      await linkOutcome(await post("/api/v1/auth/verify-email", { token: route.token }), t.verified);
    } catch {
      document.getElementById("link-result").replaceChildren(el("p", { text: t.unavailable }));
    }
    return;
  }
  if (route.page.startsWith("privacy/")) {
    renderPrivacyLink(route, t, linkForm);
    return;
  }
  if (route.page === "consent/confirm") {
    renderConsentLink(route, t, linkForm);
    return;
  }
  const fields = [];
  if (route.page === "accept-invitation") {
    fields.push(el("label", {}, [el("span", { text: t.full_name }),
      el("input", { name: "full_name", required: "", maxlength: "200", autocomplete: "name" })]));
  }
  fields.push(el("label", {}, [el("span", { text: t.new_password }),
    el("input", { name: "password", type: "password", required: "", minlength: "12", maxlength: "128", autocomplete: "new-password" })]),
  el("small", { text: t.password_hint }));
  if (route.page === "accept-invitation") {
    try {
      const list = await getJson(`/api/v1/privacy/purposes?audience=merchant&lang=${lang}`);
      fields.push(el("fieldset", {}, [el("legend", { text: t.consents }), ...list.items.map((p) => {
        const box = el("input", { type: "checkbox", name: "consent", value: p.code, id: `link-purpose-${p.code}` });
        const label = el("label", { for: box.id }, [el("strong", { text: p.title })]);
        if (p.required) label.append(" ", el("span", { class: "required", text: `(${t.required})` }));
        return el("div", { class: "purpose" }, [box, el("div", {}, [label, el("p", { text: p.description })])]);
      })]));
    } catch {
      document.getElementById("link-result").replaceChildren(el("p", { text: t.unavailable }));
    }
  }
  fields.push(el("button", { type: "submit", text: t.save }));
  linkForm.replaceChildren(...fields);
  linkForm.onsubmit = async (event) => {
    event.preventDefault();
    const password = linkForm.elements.password.value;
    try {
      if (route.page === "reset-password") {
        await linkOutcome(await post("/api/v1/auth/password-reset/confirm", { token: route.token, password }), t.reset);
      } else {
        const consents = [...linkForm.querySelectorAll("input[name=consent]")].map((c) => ({ purpose: c.value, granted: c.checked }));
        await linkOutcome(await post("/api/v1/invitations/accept", {
          token: route.token, full_name: linkForm.elements.full_name.value.trim(), password, consents,
        }), t.accepted);
      }
    } catch {
      document.getElementById("link-result").replaceChildren(el("p", { text: t.unavailable }));
    }
  };
}

// Data-subject links act only on a button press: a mail scanner opening the link must not use
// up its single use.
function renderPrivacyLink(route, t, linkForm) {
  const confirming = route.page === "privacy/confirm";
  linkForm.replaceChildren(el("p", { text: confirming ? t.confirm_intro : t.download_intro }),
    el("button", { type: "submit", text: confirming ? t.confirm : t.download }));
  linkForm.onsubmit = async (event) => {
    event.preventDefault();
    const box = document.getElementById("link-result");
    try {
      if (confirming) {
        const response = await post("/api/v1/privacy/requests/confirm", { token: route.token });
        if (!response.ok) return linkOutcome(response);
        const request = await response.json();
        const key = request.status === "completed" ? request.outcome : request.status;
        const when = (iso) => (iso ? new Date(iso).toLocaleString(lang) : "");
        const text = (t.outcome[key] || t.outcome.exported)
          .replace("{at}", when(request.scheduled_for)).replace("{due}", when(request.due_at));
        return linkOutcome(response, text);
      }
      const response = await post("/api/v1/privacy/exports/download", { token: route.token });
      if (!response.ok) return linkOutcome(response);
      const url = URL.createObjectURL(await response.blob());
      const anchor = el("a", { href: url, download: "my-data.zip", id: "download-file" });
      anchor.textContent = "my-data.zip";
      document.getElementById("link").append(anchor);
      anchor.click();
      return linkOutcome(response, t.downloaded);
    } catch {
      box.replaceChildren(el("p", { text: t.unavailable }));
    }
  };
}

// Double opt-in: a grant staff recorded counts only once the customer presses this button
// (never on opening the link, which mail scanners do).
function renderConsentLink(route, t, linkForm) {
  linkForm.replaceChildren(el("p", { text: t.consent_intro }), el("button", { type: "submit", text: t.consent_confirm }));
  linkForm.onsubmit = async (event) => {
    event.preventDefault();
    try {
      await linkOutcome(await post("/api/v1/consents/confirm", { token: route.token }), t.consent_done);
    } catch {
      document.getElementById("link-result").replaceChildren(el("p", { text: t.unavailable }));
    }
  };
}

// The data subject's own way in: no account, the shop's slug and their email. The answer is the
// same whether or not the address is a customer's (the API never tells).
function renderPrivacyRequest() {
  const t = { ...TEXT[lang], ...LINK_TEXT[lang] };
  document.documentElement.lang = lang;
  document.title = `Warung · ${t.privacy}`;
  for (const node of document.querySelectorAll("[data-t]")) node.textContent = t[node.dataset.t];
  form.hidden = true;
  document.querySelector("[data-t=intro]").hidden = true;
  document.getElementById("privacy-link").hidden = true;
  document.getElementById("link").hidden = false;
  document.getElementById("link-title").textContent = t.privacy;
  const linkForm = document.getElementById("link-form");
  const select = el("select", { name: "type" });
  for (const [value, label] of Object.entries(t.types)) select.append(el("option", { value, text: label }));
  linkForm.replaceChildren(el("p", { text: t.privacy_intro }),
    el("label", {}, [el("span", { text: t.shop_slug }),
      el("input", { name: "tenant", required: "", maxlength: "63", autocapitalize: "none", spellcheck: "false" })]),
    el("label", {}, [el("span", { text: t.email }),
      el("input", { name: "email", type: "email", required: "", maxlength: "254", autocomplete: "email" })]),
    el("label", {}, [el("span", { text: t.request_type }), select]),
    el("button", { type: "submit", text: t.send }));
  linkForm.onsubmit = async (event) => {
    event.preventDefault();
    try {
      await linkOutcome(await post("/api/v1/privacy/requests", {
        type: linkForm.elements.type.value,
        tenant: linkForm.elements.tenant.value.trim(),
        email: linkForm.elements.email.value.trim(),
      }), t.filed);
    } catch {
      document.getElementById("link-result").replaceChildren(el("p", { text: t.unavailable }));
    }
  };
}

async function render() {
  const route = linkRoute();
  if (route) return renderLink(route);
  if (location.hash === "#/privacy") return renderPrivacyRequest();
  const t = TEXT[lang];
  document.documentElement.lang = lang;
  document.title = `Warung · ${t.title}`;
  for (const node of document.querySelectorAll("[data-t]")) node.textContent = t[node.dataset.t];
  document.getElementById("privacy-link").textContent = LINK_TEXT[lang].privacy_link;
  for (const button of document.querySelectorAll("nav button")) {
    button.setAttribute("aria-pressed", String(button.dataset.lang === lang));
  }
  // Choices already made survive a language switch.
  const chosen = new Set([...form.querySelectorAll("input[name=consent]:checked")].map((c) => c.value));
  const purposes = document.getElementById("purposes");
  try {
    const [list, policy] = await Promise.all([
      getJson(`/api/v1/privacy/purposes?audience=merchant&lang=${lang}`),
      getJson(`/api/v1/privacy/policy?audience=merchant&lang=${lang}`),
    ]);
    purposes.replaceChildren(...list.items.map((p) => {
      const box = el("input", { type: "checkbox", name: "consent", value: p.code, id: `purpose-${p.code}` });
      box.checked = chosen.has(p.code);
      const title = el("strong", { text: p.title });
      const label = el("label", { for: box.id }, [title]);
      if (p.required) label.append(" ", el("span", { class: "required", text: `(${t.required})` }));
      return el("div", { class: "purpose", "data-purpose": p.code }, [
        box, el("div", {}, [label, el("p", { text: p.description })]),
      ]);
    }));
    document.querySelector("#policy summary").textContent = `${t.policy} ${policy.version}: ${policy.title}`;
    document.getElementById("policy-body").textContent = policy.body;
  } catch {
    showError(t.unavailable, []);
  }
}

function clearErrors() {
  for (const node of form.querySelectorAll(".field-error")) node.remove();
  for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
  result.className = "";
  result.replaceChildren();
}

function showError(message, errors) {
  result.className = "error";
  result.replaceChildren(el("p", { text: message }));
  for (const error of errors) {
    const input = form.querySelector(`[name="${CSS.escape(error.field)}"]`);
    const anchor = input ? input.closest("label") : document.getElementById("purposes");
    const note = el("p", { class: "field-error", "data-field": error.field, text: `${error.field}: ${error.message}` });
    if (input) input.setAttribute("aria-invalid", "true");
    anchor.after(note);
  }
}

function body() {
  const value = (name) => form.elements[name].value.trim();
  const phone = value("owner.phone");
  return {
    business_name: value("business_name"),
    slug: value("slug"),
    locale: value("locale"),
    country: value("country").toUpperCase(),
    owner: {
      full_name: value("owner.full_name"),
      email: value("owner.email"),
      ...(phone ? { phone } : {}),
      password: form.elements["owner.password"].value,
    },
    consents: [...form.querySelectorAll("input[name=consent]")].map((c) => ({ purpose: c.value, granted: c.checked })),
  };
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors();
  const t = TEXT[lang];
  const sent = body();
  let response;
  try {
    response = await fetch("/api/v1/onboarding/merchants", {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify(sent),
    });
  } catch {
    showError(t.unavailable, []);
    return;
  }
  if (response.status === 201) {
    const created = await response.json();
    form.hidden = true;
    result.className = "ok";
    result.replaceChildren(el("p", { text: t.created.replace("{slug}", created.tenant.slug) }));
    return;
  }
  const problem = await response.json().catch(() => ({}));
  showError(`${t.failed} ${problem.detail || problem.title || response.status}`, problem.errors || []);
});

for (const button of document.querySelectorAll("nav button")) {
  button.addEventListener("click", () => {
    lang = button.dataset.lang;
    render();
  });
}
form.elements.locale.value = lang;
render();
