// tfserving-gateway docs page: "Send example" buttons and the offline Swagger UI.
"use strict";

async function sendExample(button) {
  const section = button.closest(".tfgw-signature");
  const body = section.querySelector(".tfgw-body").textContent;
  const result = section.querySelector(".tfgw-result");
  result.textContent = "sending…";
  delete result.dataset.status;
  try {
    const response = await fetch(button.dataset.path, {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: body,
    });
    const text = await response.text();
    result.dataset.status = String(response.status);
    result.textContent = "HTTP " + response.status + "\n" + text;
  } catch (err) {
    result.dataset.status = "network-error";
    result.textContent = String(err);
  }
}

function startSwaggerUI() {
  if (typeof SwaggerUIBundle !== "function") {
    return;
  }
  window.ui = SwaggerUIBundle({
    url: document.body.dataset.openapi,
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    defaultModelsExpandDepth: 0,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
}

window.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("button.tfgw-send")) {
    button.addEventListener("click", () => sendExample(button));
  }
  startSwaggerUI();
});
