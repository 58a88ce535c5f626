/* Proof of work for the public forms (ALTCHA v1 challenges, solved here with the browser's
   own SHA-256; no third-party service). It finds the number n for which
   SHA-256(salt + n) equals the challenge, and puts the signed answer in the form. */
(function () {
  "use strict";
  var encoder = new TextEncoder();

  function hex(buffer) {
    var bytes = new Uint8Array(buffer), out = "";
    for (var i = 0; i < bytes.length; i++) out += bytes[i].toString(16).padStart(2, "0");
    return out;
  }

  async function solve(challenge) {
    for (var n = 0; n <= challenge.maxNumber; n++) {
      var digest = await crypto.subtle.digest("SHA-256", encoder.encode(challenge.salt + n));
      if (hex(digest) === challenge.challenge) return n;
    }
    return null;
  }

  function setup(box) {
    var form = box.closest("form");
    var input = form.querySelector('input[name="' + box.dataset.field + '"]');
    var status = box.querySelector(".altcha-status");
    var challenge = JSON.parse(box.dataset.challenge);
    var done = null;
    status.classList.remove("warning");
    status.textContent = "Před odesláním váš prohlížeč krátce ověří, že formulář odesílá člověk.";

    function start() {
      if (done) return done;
      status.textContent = "Ověřujeme, že formulář odesílá člověk…";
      done = solve(challenge).then(function (number) {
        if (number === null) {
          status.textContent = "Ověření se nepodařilo. Načtěte prosím stránku znovu.";
          return false;
        }
        input.value = btoa(JSON.stringify({
          algorithm: challenge.algorithm, challenge: challenge.challenge,
          number: number, salt: challenge.salt, signature: challenge.signature
        }));
        status.textContent = "Ověřeno, formulář můžete odeslat.";
        box.classList.add("altcha-done");
        return true;
      });
      return done;
    }

    if (!window.crypto || !crypto.subtle) {
      status.textContent = "Váš prohlížeč neumí ověření spočítat (potřebuje zabezpečené " +
        "spojení https). Napište nám prosím e-mailem.";
      return;
    }
    form.addEventListener("focusin", start, { once: true });
    form.addEventListener("submit", function (event) {
      if (input.value) return;
      event.preventDefault();
      start().then(function (ok) { if (ok) form.requestSubmit ? form.requestSubmit() : form.submit(); });
    });
    start();
  }

  document.querySelectorAll(".altcha[data-challenge]").forEach(setup);
})();
