# ruff: noqa: E501, RUF001
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
    _("This phone"),
    _("That is not an activation code. It has letters A–Z and digits 2–7, as the portal shows it."),
    _("Activating…"),
    _(
        "The screen lock was not set up, so this phone was not activated. Press Activate and unlock when asked."
    ),
    _(
        "This server wants every approval confirmed with your phone's screen lock. Press Activate again and unlock when asked."
    ),
    _("This phone is now active for {user}."),
    _("The camera could not be used. Type the code instead."),
    _("Sign-in to {client}"),
    _("unknown"),
    _("from {source}"),
    _("Remove {user} from this phone? Remove the phone in the portal too."),
    _("({seconds} s)"),
    _("New sign-in request for {user}."),
    _("The server cannot be reached. The app keeps trying; the offline codes still work."),
    _(
        "This phone is no longer active for this account (it was removed or revoked). Activate it again from the portal."
    ),
    _("Account"),
    _("Application"),
    _("From"),
    _("When"),
    _("Expired"),
    _("This request has expired. If you are signing in, start again."),
    _("{seconds} seconds left"),
    _("No longer waiting"),
    _("This request was answered elsewhere or has expired."),
    _("Type the number shown where you are signing in, then approve."),
    _(
        "This server wants approvals confirmed with the screen lock, and this phone was activated without it. Activate it again from the portal."
    ),
    _(
        "Your screen lock was not confirmed, so nothing was sent. Approve again and unlock when asked."
    ),
    _(
        "The server did not accept the screen-lock confirmation; the sign-in is still waiting. Approve again and unlock when asked."
    ),
    _(
        "The server could not be reached, so we do not know whether your answer arrived. Check your connection; if the sign-in still waits, answer again."
    ),
    _("Approved"),
    _("You are signed in. You can go back to where you were signing in."),
    _("Refused: the number did not match"),
    _(
        "The number you typed is not the one shown where you sign in, so this sign-in was refused. If it was you, sign in again and type the number shown there."
    ),
    _("Denied"),
    _("Nobody was signed in."),
    _("Reported"),
    _(
        "Thank you. Nobody was signed in, your administrators were told, and push sign-ins for your account may stay blocked until your helpdesk checks it. Change your password soon."
    ),
    _("Sign-in request"),
    _("Open the app to approve or deny it."),
    _("The server could not be reached, so nothing was sent. Check your connection and try again."),
    _("The server is not answering right now. Try again in a moment."),
    _("This request was already answered or has expired. If you are signing in, start again."),
    _(
        "The server no longer accepts this phone for this account. Activate it again from the portal."
    ),
    _(
        "This activation code cannot be used (it is wrong, used or expired). Ask the portal for a new one."
    ),
    _("The server refused this: {message}"),
    _("OpenMFA Authenticator"),
    _("Opening…"),
    _("Sign-in requests"),
    _("Nothing is waiting. When you sign in somewhere, the request appears here."),
    _("Accounts on this phone"),
    _("Add an account"),
    _("Welcome"),
    _(
        "This app approves your sign-ins. To start, activate it with the code from the portal's page “Activate the mobile app”."
    ),
    _("Activate this phone"),
    _("You opened an activation link. Activate this phone for your account?"),
    _("Activation code"),
    _("The code (or the whole link) shown on the portal's page “Activate the mobile app”."),
    _("Name of this phone"),
    _("Activate"),
    _("Scan the QR code"),
    _("Stop scanning"),
    _("Back"),
    _("Is this you signing in?"),
    _("Type the number shown where you are signing in"),
    _("Only the person signing in can see it."),
    _("Number keypad"),
    _("Delete the last digit"),
    _("Approve"),
    _("Deny"),
    _("This wasn't me"),
    _("Done"),
    _("Offline code"),
    _("Remove from this phone"),
    _(
        "This phone's clock is more than five minutes wrong, so the server cannot trust its messages. Set the date and time to automatic in the phone's settings."
    ),
    _(
        "The server did not accept the screen-lock confirmation, so nothing was done. Try again and unlock when asked."
    ),
    _(
        "The server cannot do this for your account now (for example, it already has as many phones as allowed). Ask your helpdesk."
    ),
)
