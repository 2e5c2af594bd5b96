"""Move every rest_framework.authtoken token into accounts.ApiToken, hashed, and delete the
plaintext rows. Clients keep their keys: the same key now matches its digest.

Not reversible into plaintext (the keys are gone by design): going back leaves the hashed
tokens where they are, and 0001's reversal drops them."""

from django.db import migrations

from accounts.tokens import PREFIX_CHARS, digest


def hash_plaintext_tokens(apps, schema_editor):
    Token = apps.get_model("authtoken", "Token")
    ApiToken = apps.get_model("accounts", "ApiToken")
    for token in Token.objects.all().iterator():
        hashed = ApiToken.objects.create(user_id=token.user_id, digest=digest(token.key), prefix=token.key[:PREFIX_CHARS])
        ApiToken.objects.filter(pk=hashed.pk).update(created_at=token.created)  # keep the issue date
    Token.objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("authtoken", "0004_alter_tokenproxy_options"),
    ]

    operations = [migrations.RunPython(hash_plaintext_tokens, migrations.RunPython.noop)]
