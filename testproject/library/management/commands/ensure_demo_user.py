"""Create the demo superuser (demo / demo) and a plain staff-less user (reader / reader)."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the demo users if they do not exist."

    def handle(self, *args, **options):
        User = get_user_model()
        for username, superuser in (("demo", True), ("reader", False)):
            if not User.objects.filter(username=username).exists():
                if superuser:
                    User.objects.create_superuser(username, f"{username}@example.com", username)
                else:
                    User.objects.create_user(username, f"{username}@example.com", username)
                self.stdout.write(f"created user {username} (password {username})")
