/* default.c: the embedded default policy, used only when no settings file
 * exists at any default location (README, "Default policy").
 *
 * The working directory is writable; reads are allowed everywhere except
 * credential stores and browser profiles; there is no network. It is loaded
 * through the same parser as a user's file, so --print-policy shows it
 * expanded exactly like any other settings.
 */
#include "policy.h"

const char cordon_default_settings[] =
    "{\n"
    "  \"network\": { \"allowedDomains\": [], \"deniedDomains\": [] },\n"
    "  \"filesystem\": {\n"
    "    \"denyRead\": [\n"
    "      \"~/.ssh\", \"~/.gnupg\", \"~/.aws\", \"~/.azure\", \"~/.config/gcloud\",\n"
    "      \"~/.kube\", \"~/.docker/config.json\", \"~/.netrc\", \"~/.git-credentials\",\n"
    "      \"~/.config/gh\", \"~/.npmrc\", \"~/.pypirc\", \"~/.cargo/credentials.toml\",\n"
    "      \"~/.terraform.d\", \"~/.password-store\", \"~/.local/share/keyrings\",\n"
    "      \"~/.mozilla\", \"~/.thunderbird\", \"~/.config/google-chrome\",\n"
    "      \"~/.config/chromium\", \"~/.config/BraveSoftware\", \"~/.config/microsoft-edge\",\n"
    "      \"~/.config/vivaldi\", \"~/.config/opera\", \"~/snap/firefox\", \"~/snap/chromium\",\n"
    "      \"~/.var/app/org.mozilla.firefox\", \"~/.var/app/com.google.Chrome\",\n"
    "      \"~/.var/app/org.chromium.Chromium\"\n"
    "    ],\n"
    "    \"allowRead\": [],\n"
    "    \"allowWrite\": [\".\"],\n"
    "    \"denyWrite\": []\n"
    "  }\n"
    "}\n";
