from rest_framework.permissions import IsAuthenticated


class IsViewer(IsAuthenticated):
    pass
