"""The words of the OpenMFA Authenticator web app (``mobile/webapp/``), listed for gettext.

The app is JavaScript and looks its words up by their English text; the mobile service serves
``{prefix}/app/strings/<lang>.json`` — ``{English: translation}`` for exactly these — from the
portal's catalogues (``portal/locale/<lang>/LC_MESSAGES/messages.po``), so one translation
serves the portal and the app. ``pybabel extract`` finds them here (``portal/babel.cfg``);
every one needs its Dutch entry in the catalogue (``tests/mobile/test_webapp.py`` checks).
Placeholders are written ``{name}``, as the app's ``t(text, {name: ...})`` fills them.
"""

from __future__ import annotations


def _(text: str) -> str:
    """A marker for ``pybabel extract``; the text itself."""
    return text


MESSAGES: tuple[str, ...] = (
    _("Activation code"),
    _("Approve"),
    _("Deny"),
    _("Cancel"),
)
