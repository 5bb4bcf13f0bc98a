"""The User Portal: people sign in and manage their own sign-in methods in a browser. A web app
of its own (``openmfa portal serve``), deployable on its own host; it talks to the nodes only
through the SDK's async client, with a ``portal`` key that alone can only start a sign-in."""
