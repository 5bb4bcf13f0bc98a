"""The portal's pages, one module per part of the site: signing in (:mod:`.sign_in`, with the
push wait in :mod:`.push`), the person's methods (:mod:`.methods`) and adding one
(:mod:`.enrol`), their account (:mod:`.account`), signing out (:mod:`.sign_out`), and the
routes that are not pages (:mod:`.service`). Each view is a module-level function of a
:class:`~openmfa.portal.runner.Ctx`; ``portal/app.py`` lists them under their URLs."""
